import Foundation

/// The running gateway's pid file (`LEDGER.pid`), so `retort deploy` can ask it to reload.
public enum GatewayProcess {
    /// The pid file of the gateway that writes `ledgerPath`.
    public static func pidFile(ledgerPath: String) -> String { ledgerPath + ".pid" }

    /// Records this process as the gateway of `ledgerPath`.
    public static func writePidFile(ledgerPath: String) {
        try? "\(getpid())\n".write(toFile: pidFile(ledgerPath: ledgerPath), atomically: true, encoding: .utf8)
    }

    /// Removes the pid file if it still names this process.
    public static func removePidFile(ledgerPath: String) {
        let path = pidFile(ledgerPath: ledgerPath)
        if let text = try? String(contentsOfFile: path, encoding: .utf8),
            Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) == getpid()
        {
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// Sends SIGHUP to the gateway of `ledgerPath` when one is running; returns its pid, or nil when none is (a stale
    /// pid file, or a pid now used by some other program, is left alone).
    public static func signalReload(ledgerPath: String) -> Int32? {
        guard let text = try? String(contentsOfFile: pidFile(ledgerPath: ledgerPath), encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0,
            let command = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")),
            String(decoding: command, as: UTF8.self).contains("gateway")
        else { return nil }
        return kill(pid, SIGHUP) == 0 ? pid : nil
    }
}
