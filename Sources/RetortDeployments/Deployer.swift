import Foundation
import RetortData
import RetortEvals
import RetortSearch
import RetortStudents
import RetortTeacher

/// `retort deploy`: puts a run's recommended student (or cascade) on a gateway route (FORMATS.md §8), and the checks
/// and lines around it.
public enum Deployer {
    /// A run's validation agreement at a threshold, and the share of inputs it answers there.
    public typealias Validation = (estimate: MetricEstimate, coverage: Double)

    /// What `put` stored.
    public struct Placed: Sendable {
        /// The stored deployment (with its ledger id).
        public var record: DeploymentRecord
        /// The threshold it answers at.
        public var threshold: Double
        /// The run's validation agreement at that threshold, when the report has it.
        public var validation: Validation?
    }

    /// Refuses a route the config does not have (before anything else is read).
    public static func requireRoute(_ route: String, in config: GatewayConfig, configPath: String) throws(DataError) {
        guard config.routes[route] == nil else { return }
        throw DataError(
            .usage,
            "no route \"\(route)\" in the config; it has \(config.routes.keys.sorted().joined(separator: ", "))",
            file: configPath)
    }

    /// Checks the run's recommendation, its model and its validation agreement against `minAgreement`, copies the
    /// model beside the ledger and stores the deployment as the route's serving one.
    public static func put(
        report: RunReport, runDirectory: String, config: GatewayConfig, route: String, threshold: Double?,
        shadow: Double, minAgreement: Double, now: Double = Date().timeIntervalSince1970
    ) throws -> Placed {
        let recommendation = report.recommendation
        guard recommendation.kind == "student" || recommendation.kind == "cascade",
            let candidateID = recommendation.candidate
        else {
            throw DataError(
                .usage,
                "the run recommends keeping the teacher, so there is no student to deploy: \(recommendation.reason)",
                file: runDirectory)
        }
        let modelFolder = URL(fileURLWithPath: runDirectory).appendingPathComponent("model")
        try checkModel(modelFolder, structured: report.taskKind == TaskKind.structured.rawValue)
        let chosen = threshold ?? recommendation.threshold ?? 0
        let candidate = report.candidates.first { $0.id == candidateID }
        let validation = validationAgreement(report: report, candidate: candidateID, threshold: chosen)
        if let validation, let upper = validation.estimate.ci95.last, upper < minAgreement {
            throw DataError(
                .usage,
                String(
                    format:
                        "%@ at threshold %.4f agreed %.3f [%.3f, %.3f] with the teacher on validation (coverage %.0f%%): below --min-agreement %.3f. %@",
                    candidateID, chosen, validation.estimate.value, validation.estimate.ci95.first ?? 0, upper,
                    validation.coverage * 100, minAgreement,
                    suggestion(report: report, candidate: candidateID, minAgreement: minAgreement)),
                file: runDirectory)
        }
        let target = try copyModel(
            from: modelFolder, ledgerPath: config.ledgerPath, route: route, candidate: candidateID, time: now)
        let ledger = try Ledger(config: config)
        do {
            let record = try ledger.deploy(
                DeploymentRecord(
                    time: now, route: route, candidate: candidateID, kind: recommendation.kind,
                    runDirectory: URL(fileURLWithPath: runDirectory).resolvingSymlinksInPath().path,
                    modelDirectory: target, task: report.task, threshold: chosen, shadow: shadow,
                    minAgreement: minAgreement, usdPerVCPUSecond: usdPerVCPUSecond(candidate),
                    validationAgreement: validation.map {
                        [$0.estimate.value, $0.estimate.ci95.first ?? 0, $0.estimate.ci95.last ?? 1]
                    }))
            return Placed(record: record, threshold: chosen, validation: validation)
        } catch {
            throw DataError(.cannotCreateOutput, "cannot store the deployment: \(error)", file: config.ledgerPath)
        }
    }

    /// Loads the run's exported model as the gateway will: a structured student (FORMATS.md §9) for a structured run,
    /// else a label student's bundle. A folder of the other kind is refused.
    static func checkModel(_ folder: URL, structured: Bool) throws(DataError) {
        if !structured && StructuredStudent.isStructured(folder: folder) {
            throw DataError(
                .badData,
                "model/ holds a structured student but the run's report.json has no task_kind \"structured\"; "
                    + "deploy the model folder of the same run",
                file: folder.appendingPathComponent("model.json").relativePath)
        }
        if structured {
            do { _ = try StructuredStudent.load(from: folder) } catch let error as StudentError {
                throw DataError(.badData, error.message, file: error.file ?? folder.relativePath, line: error.line)
            } catch {
                throw DataError(.badData, "cannot load the structured student: \(error)", file: folder.relativePath)
            }
            return
        }
        do throws(StudentError) { _ = try ModelBundle.load(from: folder) } catch {
            throw DataError(.badData, error.message, file: error.file ?? folder.relativePath, line: error.line)
        }
    }

    /// The `deployed ...` line `put` prints.
    public static func line(_ placed: Placed, route: String) -> String {
        var line = String(
            format: "deployed %@ on route %@: threshold %.4f", placed.record.student, route, placed.threshold)
        if let validation = placed.validation {
            line += String(
                format: " (validation coverage %.0f%%, agreement %.3f [%.3f, %.3f])", validation.coverage * 100,
                validation.estimate.value, validation.estimate.ci95.first ?? 0, validation.estimate.ci95.last ?? 1)
        }
        line += String(
            format: ", shadow %.0f%%, rollback below %.3f", placed.record.shadow * 100, placed.record.minAgreement)
        return line
    }

    /// Takes the student serving `route` off it; returns the deployment taken off.
    public static func rollBack(route: String, reason: String, ledger: Ledger, configPath: String) throws
        -> DeploymentRecord
    {
        guard let serving = try ledger.deployments(route: route).first(where: { $0.state == .serving }) else {
            throw DataError(.usage, "no student is serving route \"\(route)\"", file: configPath)
        }
        try ledger.rollBack(deployment: serving.id, time: Date().timeIntervalSince1970, reason: reason)
        return serving
    }

    /// The run's serving price: its cost per 1M calls over its measured p50 (so the gateway prices each student answer
    /// by its own measured time); the default $0.05 per vCPU-hour when the run has neither.
    public static func usdPerVCPUSecond(_ candidate: TrialResult?) -> Double {
        if let cost = candidate?.costPer1MUSD, let p50 = candidate?.latencyMsP50, cost > 0, p50 > 0 {
            return cost / (p50 / 1000 * 1_000_000)
        }
        return 0.05 / 3600
    }

    /// The run's validation agreement of `candidate` answering at `threshold`: the curve point with the largest
    /// threshold at or below it (it answers at least the same inputs, so its agreement is not flattering), or the
    /// candidate's own agreement at threshold 0.
    public static func validationAgreement(report: RunReport, candidate: String, threshold: Double) -> Validation? {
        if let curve = report.cascades?.first(where: { $0.candidate == candidate }) {
            let points = curve.validation.filter { $0.threshold <= threshold + 1e-12 && $0.agreement != nil }
            if let point = points.max(by: { $0.threshold < $1.threshold }), let agreement = point.agreement {
                return (agreement, point.coverage)
            }
        }
        guard threshold <= 0,
            let agreement = report.candidates.first(where: { $0.id == candidate })?.metrics["agreement"]
        else { return nil }
        return (agreement, 1)
    }

    /// Names the widest-coverage threshold whose validation agreement meets `minAgreement`, if any.
    public static func suggestion(report: RunReport, candidate: String, minAgreement: Double) -> String {
        let points =
            report.cascades?.first(where: { $0.candidate == candidate })?.validation.filter {
                ($0.agreement?.value ?? 0) >= minAgreement
            } ?? []
        guard let best = points.max(by: { $0.coverage < $1.coverage }), let agreement = best.agreement else {
            return
                "No threshold on the run's cascade curve agrees that well; keep the teacher or lower --min-agreement."
        }
        return String(
            format: "The cascade at --threshold %.4f would: coverage %.0f%%, agreement %.3f [%.3f, %.3f].",
            best.threshold, best.coverage * 100, agreement.value, agreement.ci95.first ?? 0, agreement.ci95.last ?? 1)
    }

    /// Copies the model folder beside the ledger (temporary folder, then rename); returns the copy's path.
    public static func copyModel(
        from folder: URL, ledgerPath: String, route: String, candidate: String, time: Double
    ) throws(DataError) -> String {
        let root = URL(fileURLWithPath: ledgerPath).deletingLastPathComponent().appendingPathComponent("deployments")
        let safeRoute = String(route.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
        let name = "\(safeRoute)-\(Int(time * 1000))-\(candidate)"
        let target = root.appendingPathComponent(name)
        let temporary = root.appendingPathComponent(".\(name).partial")
        do {
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            try? FileManager.default.removeItem(at: temporary)
            try FileManager.default.copyItem(at: folder, to: temporary)
            try FileManager.default.moveItem(at: temporary, to: target)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw DataError(
                .cannotCreateOutput, "cannot copy the model beside the ledger: \(FileProblem.reason(error))",
                file: root.path)
        }
        return target.path
    }

    /// The ledger of an existing gateway config.
    public static func ledger(_ config: String) throws -> Ledger {
        let loaded = try GatewayConfig.load(config)
        guard loaded.ledger.mayExist else {
            throw DataError(.missingInput, "no ledger yet: nothing was deployed", file: loaded.ledgerPath)
        }
        return try Ledger(config: loaded)
    }

    /// `records` with their shadow agreement: the FORMATS.md §8 JSON (one object when `single`), or a line each
    /// (`empty` when there are none).
    public static func listing(
        _ records: [DeploymentRecord], ledger: Ledger, json: Bool, single: Bool, empty: String
    ) throws -> String {
        let agreements = try records.map { try ledger.shadowAgreement(deployment: $0.id) }
        if json {
            let objects = zip(records, agreements).map { $0.statusJSON(agreement: $1) }
            return (single ? objects[0] : JSON.array(objects)).text
        }
        if records.isEmpty { return empty }
        return zip(records, agreements).map { summary($0, $1) }.joined(separator: "\n")
    }

    /// One line per deployment.
    public static func summary(_ record: DeploymentRecord, _ agreement: ShadowAgreement) -> String {
        var text = "\(record.route): \(record.student) \(record.state.rawValue), threshold "
        text += String(
            format: "%.4f, shadow %.0f%%, floor %.3f", record.threshold, record.shadow * 100, record.minAgreement)
        if agreement.count > 0 {
            let (low, high) = agreement.interval
            text += String(
                format: "; shadow agreement %.3f [%.3f, %.3f] over %d", agreement.value, low, high, agreement.count)
        } else {
            text += "; no shadow answers yet"
        }
        if let reason = record.reason { text += "; \(reason)" }
        return text
    }
}
