import Foundation
import RetortData
import RetortSearch

/// Prints search progress: on a terminal a live line (rung, candidates alive, best so far, time left) rewritten
/// in place; otherwise plain lines, one per phase and per decided candidate.
final class ProgressPrinter: @unchecked Sendable {
    // @unchecked: `lineOpen` is only touched while holding `lock`.
    private let lock = NSLock()
    private let metric: String
    private let isTerminal: Bool
    private let say: @Sendable (String) -> Void
    private var lineOpen = false

    /// A printer writing lines with `say`; the live line only when `live` and stdout is a terminal.
    init(metric: String, say: @escaping @Sendable (String) -> Void, live: Bool) {
        self.metric = metric
        self.say = say
        self.isTerminal = live && isatty(STDOUT_FILENO) == 1
    }

    func handle(_ event: SearchEvent) {
        lock.withLock {
            switch event {
            case .phase(let name):
                closeLine()
                say("[phase] \(name)")
            case .progress(let progress):
                guard isTerminal else { return }
                let best =
                    progress.best.map { String(format: "best %@ %.4f (%@)", metric, $0.value, $0.candidate) }
                    ?? "best —"
                let line = String(
                    format: "rung %d/%d · %d/%d trained · %d alive · %@ · %.0f s left", progress.rung + 1,
                    progress.rungs,
                    progress.finishedInRung, progress.totalInRung, progress.alive, best, progress.secondsLeft)
                FileHandle.standardOutput.write(Data(("\r\u{1B}[2K" + line).utf8))
                lineOpen = true
            case .trial(let trial, let index, let total):
                closeLine()
                let value = trial.metrics[metric].map { String(format: "%@ %.4f", metric, $0.value) } ?? ""
                let latency = trial.latencyMsP50.map { String(format: "p50 %.4f ms", $0) } ?? ""
                let fidelity =
                    trial.status == .pruned && trial.fidelity > 0 ? String(format: "fidelity %.3f", trial.fidelity) : ""
                let details = [
                    trial.status.rawValue, value, latency, fidelity,
                    trial.status == .skipped ? "" : ByteSize.format(trial.sizeBytes),
                    trial.epochsRun.map { "\($0) epochs" } ?? "", trial.reason ?? "",
                ].filter { !$0.isEmpty }.joined(separator: ", ")
                say(index > 0 ? "[\(index)/\(total)] \(trial.id): \(details)" : "[-/\(total)] \(trial.id): \(details)")
            }
        }
    }

    func finishLine() { lock.withLock { closeLine() } }

    private func closeLine() {
        if lineOpen {
            FileHandle.standardOutput.write(Data("\n".utf8))
            lineOpen = false
        }
    }
}
