import Foundation
import RetortSearch

/// The break-even in words (frontier.md, report.html, `retort ui`, `retort recommend`).
public enum EconomicsText {
    /// One paragraph: the one-off cost and its parts, the saving per request with its interval, the break-even in
    /// requests and, with traffic, per month and the payback; nil without economics.
    public static func line(_ economics: Economics?) -> String? {
        guard let economics else { return nil }
        var text = String(
            format: "Money: one-off $%@ (the teacher's answers on every row $%@, the search's %.0f CPU-seconds $%@)",
            money(economics.oneOffUSD), money(economics.labelsUSD), economics.cpuSeconds, money(economics.trainingUSD))
        let saving = economics.savingPerRequestUSD
        text += String(
            format: "; each request saves $%@ per 1M [%@, %@] against the teacher", money(saving.value * 1e6),
            money(saving.ci95[0] * 1e6), money(saving.ci95[1] * 1e6))
        if let requests = economics.breakEvenRequests {
            text += ", so it breaks even after \(Economics.formatCount(requests)) requests"
        } else {
            text += ", so it never breaks even"
        }
        if let traffic = economics.trafficPerMonth, let monthly = economics.monthlySavingUSD {
            text += String(
                format: ". At %@ requests a month%@: $%@ a month [%@, %@], ", Economics.formatCount(traffic),
                economics.trafficSource.map { " (\($0))" } ?? "", money(monthly.value), money(monthly.ci95[0]),
                money(monthly.ci95[1]))
            if let months = economics.monthsToPayBack {
                let range = economics.monthsToPayBackRange ?? []
                let slow = range.count == 2 ? range[1].map { String(format: "%.2g", $0) } ?? "never" : "?"
                let fast = range.first.flatMap { $0 }.map { String(format: "%.2g", $0) } ?? "?"
                text += String(format: "paid back in %.2g months [%@, %@]", months, fast, slow)
            } else {
                text += "never paid back"
            }
            text +=
                economics.paysBack == true
                ? String(format: " (within the %.0f-month horizon)", economics.horizonMonths)
                : String(format: ", beyond the %.0f-month horizon", economics.horizonMonths)
        }
        return text + "."
    }

    /// Dollars with sensible precision: 1,234 · 12.3 · 0.0123.
    static func money(_ value: Double) -> String {
        let magnitude = abs(value)
        if magnitude >= 1000 { return String(format: "%.0f", value) }
        if magnitude >= 1 { return String(format: "%.2f", value) }
        return String(format: "%.3g", value)
    }
}
