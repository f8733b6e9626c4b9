import Foundation
import RetortData
import Synchronization

/// Runs every rung as a Ray task: the Python bridge (`integrations/ray/retort_ray.py`) connects to the cluster, puts
/// the rows (and any encoder folders) into Ray's object store once, and submits each trial's spec and input state as
/// a task that runs `retort trial run` on whichever node Ray picks. The bridge resubmits a trial lost with its worker
/// or node (bounded); the scheduler here keeps the journal and checkpoints, so a killed driver resumes with `--resume`.
public final class RayTrialExecutor: TrialExecutor, @unchecked Sendable {
    /// Where the bridge runs from and what it connects to.
    public struct Options: Sendable {
        /// The Python interpreter with the `ray` package (the cluster's version).
        public var python: String
        /// The bridge script.
        public var bridge: URL
        /// The cluster's GCS address, HOST:PORT.
        public var address: String
        /// The `retort` binary on the workers (a name looked up on their PATH, or a path).
        public var retortBinary: String
        /// Resubmissions of a trial lost with its worker or node.
        public var retries: Int
        /// CPUs each trial asks Ray for (also its BLAS threads).
        public var cpusPerTrial: Int
        /// Seconds to wait for the bridge to connect.
        public var connectTimeout: Double

        /// Options with every field given.
        public init(
            python: String, bridge: URL, address: String, retortBinary: String, retries: Int = 3,
            cpusPerTrial: Int = 1, connectTimeout: Double = 120
        ) {
            self.python = python
            self.bridge = bridge
            self.address = address
            self.retortBinary = retortBinary
            self.retries = retries
            self.cpusPerTrial = cpusPerTrial
            self.connectTimeout = connectTimeout
        }
    }

    /// What the cluster looked like when the bridge connected.
    public struct Cluster: Sendable {
        /// Alive nodes.
        public var nodes: Int
        /// Their CPUs.
        public var cpus: Int
        /// The `ray` package's version.
        public var rayVersion: String
        /// The nodes' host names.
        public var hosts: [String]
    }

    /// One line from the bridge.
    struct Event: Decodable {
        var event: String
        var id: Int?
        var message: String?
        var node: String?
        var host: String?
        var seconds: Double?
        var attempt: Int?
        var of: Int?
        var lost: Bool?
        var nodes: Int?
        var cpus: Int?
        var ray: String?
        var hosts: [String]?
        var bridge: Int?
    }

    /// A request line; `spec` is the trial's spec (paths are the driver's; the bridge replaces them on the worker).
    struct Request: Encodable {
        var op: String
        var id: Int?
        var spec: Spec?
        var state: String?
        var out: String?
        var folders: [String]?
        var cpus: Int?
        var exec: Bool?
        var data: [String: DataValue]?
        var folderPaths: [String: String]?

        enum CodingKeys: String, CodingKey {
            case op, id, spec, state, out, folders, cpus, exec, data
            case folderPaths = "folders_paths"
        }
    }

    /// A trial's spec: a label trial's rung, or a structured trial's training run.
    enum Spec: Encodable {
        case label(TrialSpec)
        case structured(StructuredTrialSpec)

        func encode(to encoder: any Encoder) throws {
            switch self {
            case .label(let spec): try spec.encode(to: encoder)
            case .structured(let spec): try spec.encode(to: encoder)
            }
        }
    }

    /// `data`'s value: a task folder path or three file paths.
    enum DataValue: Encodable {
        case path(String)
        case paths([String])

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .path(let path): try container.encode(path)
            case .paths(let paths): try container.encode(paths)
            }
        }
    }

    /// How the bridge was started.
    public let options: Options
    /// The rows every trial reads.
    public let data: DataSource
    /// Driver-side folder for input states and returned results (one subfolder per trial, removed after reading).
    public let directory: URL
    /// The cluster as the bridge found it.
    public private(set) var cluster = Cluster(nodes: 0, cpus: 0, rayVersion: "", hosts: [])
    /// The search's encoder-head candidates.
    let encoderCandidates: [Candidate]
    /// The bridge's protocol version (1: label trials only; 2: also structured trials, whose results come back as
    /// whole folders).
    public private(set) var bridgeVersion = 1
    /// Progress lines (retries).
    let log: @Sendable (String) -> Void

    private let process = Process()
    private let stdin = Pipe()
    private let stdout = Pipe()
    private let stderrURL: URL
    private let lock = NSLock()
    private var nextID = 0
    private var waiting: [Int: @Sendable (Result<Event, any Error>) -> Void] = [:]
    private var ready: CheckedContinuation<Event, any Error>?
    private var exited = false
    private var retriedCount = 0

    /// Starts the bridge and waits until it has connected to the cluster and put the rows into the object store.
    /// The folders of `encoderCandidates` (the search's encoder-head candidates) travel the same way, and a trial of
    /// one of them asks the worker to embed every depth of its encoder pass at once.
    /// `files` (a structured search's base-model files) travel the same way.
    public init(
        options: Options, data: DataSource, directory: URL, encoderCandidates: [Candidate] = [], files: [String] = [],
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws {
        self.encoderCandidates = encoderCandidates
        let encoderFolders = encoderCandidates.compactMap(\.encoder?.path) + files
        self.options = options
        self.data = data
        self.directory = directory
        self.log = log
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        stderrURL = directory.appendingPathComponent("bridge.log")
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        // A bridge that exits early must not take the driver down with SIGPIPE on the next request.
        signal(SIGPIPE, SIG_IGN)
        guard FileManager.default.fileExists(atPath: options.bridge.path) else {
            throw SearchError("the Ray bridge \(options.bridge.path) does not exist; pass --ray-bridge")
        }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            options.python, options.bridge.path, "--address", options.address, "--retort-bin", options.retortBinary,
            "--retries", "\(options.retries)",
        ]
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        do { try process.run() } catch {
            throw SearchError("cannot start the Ray bridge with \(options.python): \(error)")
        }
        Thread.detachNewThread { [self] in readEvents() }
        var hello = Request(op: "hello")
        switch data {
        case .task(let folder): hello.data = ["task": .path(folder.standardizedFileURL.path)]
        case .files(let train, let validation, let test):
            hello.data = ["files": .paths([train, validation, test].map(\.standardizedFileURL.path))]
        }
        hello.folderPaths = Dictionary(
            uniqueKeysWithValues: Set(encoderFolders).map { ($0, URL(fileURLWithPath: $0).standardizedFileURL.path) })
        let timeout = options.connectTimeout
        let event: Event = try await withCheckedThrowingContinuation { continuation in
            lock.lock()
            ready = continuation
            lock.unlock()
            do { try send(hello) } catch { resolveReady(.failure(error)) }
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { [weak self] in
                self?.resolveReady(
                    .failure(
                        SearchError(
                            "the Ray bridge did not connect to \(options.address) within \(Int(timeout)) s")))
            }
        }
        cluster = Cluster(
            nodes: event.nodes ?? 0, cpus: event.cpus ?? 0, rayVersion: event.ray ?? "", hosts: event.hosts ?? [])
        bridgeVersion = event.bridge ?? 1
        guard cluster.cpus >= options.cpusPerTrial else {
            close()
            throw SearchError(
                "the Ray cluster at \(options.address) has \(cluster.cpus) CPUs; a trial needs \(options.cpusPerTrial)")
        }
    }

    /// Ends the bridge (it cancels what is still running) and waits briefly for it to exit. Call it when the search
    /// is over; a killed driver closes the pipe the same way.
    public func close() {
        try? stdin.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { process.terminate() }
    }

    /// Runs `work` as a Ray task and reads back its records and state.
    public func run(_ work: RungWork, task: TaskData) async throws -> RungOutput {
        let folder = try work.trialFolder(in: directory)
        defer { try? FileManager.default.removeItem(at: folder) }
        var request = Request(op: "trial")
        var spec = TrialSpec(work: work, data: data, blasThreads: options.cpusPerTrial, checkpoint: nil)
        request.state = try work.inputState(in: folder)
        let out = folder.appendingPathComponent("out", isDirectory: true)
        request.out = out.path
        request.folders = Array(Set(work.alive.compactMap { $0.encoder?.path })).sorted()
        if let encoder = work.group.featureKey.encoder {
            spec.featureCandidates = encoderCandidates.filter {
                $0.encoder?.path == encoder.path && $0.encoder?.maxLength == encoder.maxLength
            }
        }
        request.spec = .label(spec)
        request.cpus = options.cpusPerTrial
        let event = try await submit(request)
        guard event.event == "done" else {
            throw SearchError(
                "trial \(work.group.key) (rung \(work.rung + 1)) failed on the Ray cluster at \(options.address): "
                    + (event.message ?? "no reason given"))
        }
        return try TrialOutcome.read(out, work: work)
    }

    /// Trains each structured run as a Ray task (all at once; Ray queues what the cluster's CPUs cannot take yet) and
    /// reads back the students and answers each wrote, as `retort trial run` writes them. The base-model files travel
    /// through the object store once; a returned student's copy of one comes back as a link to the driver's file.
    public func trainStructured(
        _ runs: [[StructuredCandidate]], fidelity: Double, task: StructuredTaskData, seed: UInt64
    ) throws -> [StructuredRunOutput] {
        guard bridgeVersion >= 2 else {
            throw SearchError(
                "the Ray bridge \(options.bridge.path) speaks version \(bridgeVersion); structured trials need 2 "
                    + "(the bridge of this retort's checkout)")
        }
        let hash = SearchFingerprint.structuredTask(task)
        return try StructuredRunOutput.trainEach(runs, in: directory, rows: task.validation.count) {
            members, _, out in
            let key = members[0].trainingKey
            var request = Request(op: "trial")
            request.spec = .structured(
                StructuredTrialSpec(
                    data: data, taskHash: hash, candidates: members, fidelity: fidelity, seed: seed,
                    blasThreads: options.cpusPerTrial))
            request.out = out.path
            request.folders = members[0].family == .slm ? [members[0].model] : []
            request.cpus = options.cpusPerTrial
            let event = try submitAndWait(request)
            guard event.event == "done" else {
                throw SearchError(
                    "structured trial \(key) failed on the Ray cluster at \(options.address): "
                        + (event.message ?? "no reason given"))
            }
        }
    }

    /// Submit-to-result seconds of `count` empty Ray tasks, one at a time (with `exec`, each also starts the workers'
    /// `retort --help`): the Ray path's overhead per trial.
    public func emptyTrials(count: Int, exec: Bool) async throws -> [Double] {
        var seconds: [Double] = []
        for _ in 0..<count {
            var request = Request(op: "noop")
            request.exec = exec
            let started = DispatchTime.now().uptimeNanoseconds
            let event = try await submit(request)
            guard event.event == "done" else { throw SearchError("an empty Ray task failed: \(event.message ?? "")") }
            seconds.append(Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
        }
        return seconds
    }

    /// The cluster, and how many trials were resubmitted.
    public var summary: ExecutorSummary? {
        lock.lock()
        defer { lock.unlock() }
        return ExecutorSummary(
            kind: "ray", address: options.address, nodes: cluster.nodes, cpus: cluster.cpus, retried: retriedCount,
            latencyHost: ProcessInfo.processInfo.hostName)
    }

    // MARK: The conversation

    private func submit(_ request: Request) async throws -> Event {
        try await withCheckedThrowingContinuation { continuation in
            submit(request) { continuation.resume(with: $0) }
        }
    }

    /// Submits `request` and blocks this thread until its event arrives (the events are read on a thread of their
    /// own, so this never waits on itself).
    private func submitAndWait(_ request: Request) throws -> Event {
        let done = DispatchSemaphore(value: 0)
        let result = Mutex<Result<Event, any Error>?>(nil)
        submit(request) { outcome in
            result.withLock { $0 = outcome }
            done.signal()
        }
        done.wait()
        guard let outcome = result.withLock({ $0 }) else { throw bridgeError() }
        return try outcome.get()
    }

    /// Sends `request` with a new id; `reply` gets its event, or the error that ended the bridge.
    private func submit(_ request: Request, reply: @escaping @Sendable (Result<Event, any Error>) -> Void) {
        var request = request
        lock.lock()
        if exited {
            lock.unlock()
            reply(.failure(bridgeError()))
            return
        }
        nextID += 1
        request.id = nextID
        waiting[nextID] = reply
        lock.unlock()
        do { try send(request) } catch {
            lock.lock()
            let pending = waiting.removeValue(forKey: request.id ?? 0)
            lock.unlock()
            pending?(.failure(error))
        }
    }

    private func send(_ request: Request) throws {
        var line = try TrialJSON.lineEncoder().encode(request)
        line.append(0x0A)
        lock.lock()
        defer { lock.unlock() }
        do { try stdin.fileHandleForWriting.write(contentsOf: line) } catch { throw bridgeError() }
    }

    private func readEvents() {
        let reader = stdout.fileHandleForReading
        var buffer = Data()
        let decoder = JSONDecoder()
        while true {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
            while let newline = buffer.firstIndex(of: 0x0A) {
                let line = buffer[buffer.startIndex..<newline]
                buffer = Data(buffer[(newline + 1)...])
                guard let event = try? decoder.decode(Event.self, from: line) else { continue }
                handle(event)
            }
        }
        bridgeExited()
    }

    private func handle(_ event: Event) {
        switch event.event {
        case "ready": resolveReady(.success(event))
        case "fatal": resolveReady(.failure(SearchError(event.message ?? "the Ray bridge stopped")))
        case "retry":
            lock.lock()
            retriedCount += 1
            lock.unlock()
            log(
                "[ray] a trial was lost (\(event.message ?? "worker lost")); resubmitting in \(String(format: "%.0f", event.seconds ?? 0)) s, attempt \(event.attempt ?? 0) of \(event.of ?? 0)"
            )
        default:
            guard let id = event.id else { return }
            lock.lock()
            let continuation = waiting.removeValue(forKey: id)
            lock.unlock()
            continuation?(.success(event))
        }
    }

    private func resolveReady(_ result: Result<Event, any Error>) {
        lock.lock()
        let continuation = ready
        ready = nil
        lock.unlock()
        continuation?.resume(with: result)
    }

    private func bridgeExited() {
        lock.lock()
        exited = true
        let pending = waiting
        waiting = [:]
        lock.unlock()
        let error = bridgeError()
        resolveReady(.failure(error))
        for reply in pending.values { reply(.failure(error)) }
    }

    /// The bridge is gone: its last words (a `fatal` event was already delivered to whoever waited for it).
    private func bridgeError() -> SearchError {
        let last = (try? String(contentsOf: stderrURL, encoding: .utf8))?.split(separator: "\n").last.map(String.init)
        return SearchError(
            "the Ray bridge (\(options.python) \(options.bridge.lastPathComponent)) exited"
                + (last.map { ": \($0)" } ?? "") + " (log: \(stderrURL.path))")
    }
}
