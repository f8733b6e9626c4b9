import Foundation
import RetortData
import RetortEvals
import RetortSearch

/// report.html: one self-contained, well-formed XHTML file (inline SVG, CSS and a few lines of JavaScript; nothing
/// loaded from anywhere): the metric against size and against latency with CI whiskers, the frontier as a step line,
/// the teacher and the constraint lines; the recommendation with its savings; a sortable candidates table.
public enum HTMLReport {
    /// The document for `report`.
    public static func render(_ report: RunReport) -> String {
        let body = content(report)
        return document(title: "\(escape(report.job)) · Retort report", body: body)
    }

    /// The report's content (heading, recommendation, plots, candidates table) without the document around it, for
    /// pages that embed it (`retort ui`); tables sort with ``sortScript``.
    public static func content(_ report: RunReport) -> String {
        let metric = report.primaryMetric
        let trained = report.candidates.filter { $0.metrics[metric] != nil }
        let teacherValue = report.teacher.validationMetrics[metric]?.value
        var body = ""
        body += "<h1>\(escape(report.job)): which student, or none?</h1>\n"
        body += "<p class=\"meta\">Run \(escape(report.runId)) · task \(escape(report.task)) · seed \(report.seed) · "
        body += "\(report.candidates.count) candidates, strategy \(escape(report.search.strategy)) · primary metric "
        body += "\(escape(metric)) on validation (95% bootstrap CIs)</p>\n"
        body += recommendationSection(report, metric: metric)
        body += "<div class=\"plots\">\n"
        body += scatter(
            report, trained: trained, metric: metric, title: "\(metric) against size", axis: "size (bytes, log scale)",
            value: { Double($0.sizeBytes) }, limit: report.constraints.maxModelBytes.map(Double.init), teacherX: nil,
            teacherValue: teacherValue)
        body += scatter(
            report, trained: trained.filter { $0.latencyMsP50 != nil }, metric: metric,
            title: "\(metric) against latency",
            axis: "measured p50 latency (ms, log scale)", value: { $0.latencyMsP50 ?? 1 },
            limit: report.constraints.maxLatencyMs.map { $0 / (report.constraints.latencyScale ?? 1) },
            teacherX: report.teacher.latencyMsP50, teacherValue: teacherValue)
        body += "</div>\n"
        body += table(report, metric: metric)
        return body
    }

    /// The report page's CSS.
    public static let style = """
            body { font: 14px/1.4 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 16px 24px; color: #222; }
            h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 16px 0 6px; }
            .meta { color: #666; margin: 0 0 10px; }
            .rec { background: #f3f7ff; border: 1px solid #c9d8f5; padding: 8px 12px; border-radius: 6px; }
            .plots { display: flex; gap: 16px; flex-wrap: wrap; }
            svg { background: #fff; border: 1px solid #ddd; }
            table { border-collapse: collapse; font-size: 12px; margin-top: 8px; }
            th, td { border-bottom: 1px solid #eee; padding: 3px 8px; text-align: right; white-space: nowrap; }
            th { cursor: pointer; background: #fafafa; position: sticky; top: 0; } td:first-child, th:first-child { text-align: left; }
            tr.frontier td:first-child { font-weight: bold; } tr.recommended { background: #fff6d6; }
        """

    /// Click-to-sort for the headers of every `sortable` table.
    ///
    /// Click (or Enter, or Space) on a header sorts its table by that column (numbers by value, `data-v` when a cell
    /// has one); the header says its order in `aria-sort`.
    public static let sortScript =
        """
        document.querySelectorAll('table.sortable th').forEach(function (th) {
          th.tabIndex = 0;
          function sort() {
            var tbody = th.closest('table').tBodies[0];
            var index = Array.prototype.indexOf.call(th.parentNode.children, th);
            var rows = Array.prototype.slice.call(tbody.rows);
            var ascending = th.getAttribute('aria-sort') !== 'ascending';
            th.parentNode.querySelectorAll('th').forEach(function (other) { other.removeAttribute('aria-sort'); });
            th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
            rows.sort(function (a, b) {
              var x = a.cells[index].getAttribute('data-v') || a.cells[index].textContent;
              var y = b.cells[index].getAttribute('data-v') || b.cells[index].textContent;
              var nx = parseFloat(x), ny = parseFloat(y);
              var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
              return ascending ? c : -c;
            });
            rows.forEach(function (r) { tbody.appendChild(r); });
          }
          th.addEventListener('click', sort);
          th.addEventListener('keydown', function (e) {
            if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sort(); }
          });
        });

        """

    static func document(title: String, body: String) -> String {
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <!DOCTYPE html>
        <html xmlns="http://www.w3.org/1999/xhtml" lang="en">
        <head>
        <meta charset="utf-8"/>
        <title>\(title)</title>
        <style>
        \(style)</style>
        </head>
        <body>
        \(body)<script>
        //<![CDATA[
        \(sortScript)//]]>
        </script>
        </body>
        </html>
        """
    }

    static func recommendationSection(_ report: RunReport, metric: String) -> String {
        let recommendation = report.recommendation
        var text = "<div class=\"rec\">"
        if let id = recommendation.candidate, let trial = report.candidates.first(where: { $0.id == id }) {
            let cascade = recommendation.kind == "cascade"
            text +=
                cascade
                ? String(
                    format:
                        "<b>Recommendation: cascade: <code>%@</code> answers when its %@ is ≥ %.3f, the teacher the rest.</b> %@.",
                    escape(id), report.confidenceName, recommendation.threshold ?? 0, escape(recommendation.reason))
                : "<b>Recommendation: distill into <code>\(escape(id))</code>.</b> \(escape(recommendation.reason))."
            if let test = recommendation.testMetrics?[metric], let teacher = report.teacher.metrics[metric] {
                text += String(
                    format: " Test %@ %.4f [%.4f, %.4f] vs teacher %.4f.", escape(metric), test.value,
                    test.ci95.first ?? .nan,
                    test.ci95.last ?? .nan, teacher.value)
            }
            var savings: [String] = []
            // A cascade's figures are blended: the student on every input, the teacher on the ones it hands over.
            let costPer1M = cascade ? recommendation.blendedCostPer1MUSD : trial.costPer1MUSD
            let latencyP50 = cascade ? recommendation.blendedLatencyMsP50 : trial.latencyMsP50
            if let teacherCost = report.teacher.costPer1MUSD, let cost = costPer1M, cost > 0 {
                savings.append(
                    String(
                        format: "cost ×%.0f lower ($%.4g vs $%.4g per 1M calls)", teacherCost / cost, cost, teacherCost)
                )
            }
            if let teacherLatency = report.teacher.latencyMsP50, let latency = latencyP50, latency > 0 {
                savings.append(
                    String(
                        format: "latency ×%.0f lower (%.4g ms vs %.4g ms p50)", teacherLatency / latency, latency,
                        teacherLatency))
            }
            if !savings.isEmpty { text += " Savings against the teacher: " + savings.joined(separator: "; ") + "." }
        } else {
            text += "<b>Recommendation: no distillation, keep the teacher.</b> \(escape(recommendation.reason))."
        }
        if let money = EconomicsText.line(report.economics) { text += "<br>" + escape(money) }
        if let speed = FrontierTable.speedLine(report.speed) { text += "<br>" + escape(speed) }
        return text + "</div>\n"
    }

    /// One scatter plot: x on a log scale, y linear; CI whiskers; the frontier as a step line; the teacher and the
    /// constraint lines dashed.
    static func scatter(
        _ report: RunReport, trained: [TrialResult], metric: String, title: String, axis: String,
        value: (TrialResult) -> Double, limit: Double?, teacherX: Double?, teacherValue: Double?
    ) -> String {
        let (width, height, left, right, top, bottom) = (600.0, 340.0, 56.0, 14.0, 26.0, 40.0)
        var xs = trained.map { log10(max(value($0), 1e-9)) }.filter(\.isFinite)
        if let teacherX { xs.append(log10(max(teacherX, 1e-9))) }
        if let limit { xs.append(log10(max(limit, 1e-9))) }
        var ys: [Double] = []
        for trial in trained {
            guard let estimate = trial.metrics[metric] else { continue }
            ys.append(estimate.ci95.first ?? estimate.value)
            ys.append(estimate.ci95.last ?? estimate.value)
        }
        if let teacherValue { ys.append(teacherValue) }
        let (xMin, xMax) = padded(xs.min() ?? 0, xs.max() ?? 1, by: 0.05)
        let (yMin, yMax) = padded(ys.min() ?? 0, ys.max() ?? 1, by: 0.04)
        func px(_ x: Double) -> Double { left + (x - xMin) / max(xMax - xMin, 1e-9) * (width - left - right) }
        func py(_ y: Double) -> Double { top + (yMax - y) / max(yMax - yMin, 1e-9) * (height - top - bottom) }
        var svg = String(
            format: "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" class=\"plot\">\n", width,
            height)
        svg += "<text x=\"\(left)\" y=\"16\" font-size=\"13\" font-weight=\"bold\">\(escape(title))</text>\n"
        for tick in Int(floor(xMin))...Int(ceil(xMax)) where Double(tick) >= xMin && Double(tick) <= xMax {
            let x = px(Double(tick))
            svg += String(
                format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", x, top, x,
                height - bottom)
            svg += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">1e%d</text>\n", x,
                height - bottom + 13, tick)
        }
        for step in 0...4 {
            let y = yMin + (yMax - yMin) * Double(step) / 4
            svg += String(
                format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", left, py(y),
                width - right, py(y))
            svg += String(
                format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%.3f</text>\n", left - 4,
                py(y) + 3, y)
        }
        svg += String(
            format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%@</text>\n",
            (left + width - right) / 2,
            height - 8, escape(axis))
        /// A dashed line from (x1, y1) to (x2, y2) with a label at (lx, ly).
        func dashed(
            _ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String, dash: String, label: String,
            at lx: Double, _ ly: Double, fill: String
        ) -> String {
            String(
                format:
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" stroke-dasharray=\"%@\"/>\n",
                x1, y1, x2, y2, stroke, dash)
                + String(
                    format: "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"%@\">%@</text>\n", lx, ly, fill,
                    escape(label))
        }
        if let teacherValue {
            let y = py(teacherValue)
            svg += dashed(
                left, y, width - right, y, stroke: "#c00", dash: "4 3",
                label: String(format: "teacher %.4f", teacherValue),
                at: left + 4, y - 3, fill: "#c00")
            let bar = teacherValue - report.constraints.maxDrop
            if bar > yMin {
                svg += dashed(
                    left, py(bar), width - right, py(bar), stroke: "#e90", dash: "2 3",
                    label: "bar (teacher − max drop)",
                    at: left + 4, py(bar) + 11, fill: "#b70")
            }
        }
        if let limit {
            let x = px(log10(max(limit, 1e-9)))
            svg += dashed(
                x, top, x, height - bottom, stroke: "#e90", dash: "4 3", label: "limit", at: x + 3, top + 10,
                fill: "#b70")
        }
        if let teacherX, let teacherValue {
            svg += String(
                format:
                    "<rect class=\"teacher\" x=\"%.1f\" y=\"%.1f\" width=\"9\" height=\"9\" fill=\"#c00\"><title>teacher</title></rect>\n",
                px(log10(max(teacherX, 1e-9))) - 4.5, py(teacherValue) - 4.5)
        }
        let frontier = trained.filter { report.frontier.contains($0.id) }.sorted { value($0) < value($1) }
        var best = -Double.infinity
        var steps: [(Double, Double)] = []
        for trial in frontier {
            let y = trial.metrics[metric]?.value ?? 0
            if y > best {
                if let last = steps.last { steps.append((px(log10(max(value(trial), 1e-9))), last.1)) }
                best = y
                steps.append((px(log10(max(value(trial), 1e-9))), py(y)))
            }
        }
        if steps.count > 1 {
            svg +=
                "<polyline fill=\"none\" stroke=\"#36c\" stroke-width=\"1.5\" points=\""
                + steps.map { String(format: "%.1f,%.1f", $0.0, $0.1) }.joined(separator: " ") + "\"/>\n"
        }
        for trial in trained {
            guard let estimate = trial.metrics[metric] else { continue }
            let x = px(log10(max(value(trial), 1e-9)))
            let onFrontier = report.frontier.contains(trial.id)
            let recommended = trial.id == report.recommendation.candidate
            let color = recommended ? "#e90" : onFrontier ? "#36c" : trial.status == .complete ? "#999" : "#ccc"
            svg += String(
                format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%@\" stroke-width=\"1\"/>\n", x,
                py(estimate.ci95.first ?? estimate.value), x, py(estimate.ci95.last ?? estimate.value), color)
            svg += String(
                format:
                    "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"%@\" fill=\"%@\"><title>%@: %.4f</title></circle>\n",
                x,
                py(estimate.value), recommended ? "5" : "3", color, escape(trial.id), estimate.value)
        }
        return svg + "</svg>\n"
    }

    static func table(_ report: RunReport, metric: String) -> String {
        let predicted = report.candidates.contains { $0.predicted != nil }
        var html = "<h2>Candidates (click a column to sort)</h2>\n"
        if predicted {
            html +=
                "<p>The learned strategy predicted each candidate's gap to the teacher from history before training; "
                + "the two <em>predicted</em> columns are predictions, not measurements. Candidates it did not train "
                + "have no measured figures.</p>\n"
        }
        if let calibration = report.search.calibration {
            html += "<p>Predictions against measurements: \(escape(calibration.summaryLine)).</p>\n"
        }
        if let mode = report.search.learnedMode {
            html +=
                "<p>Learned strategy schedule: <b>\(escape(mode.schedule.rawValue))</b> (\(escape(mode.reason))).</p>\n"
        }
        html += "<table class=\"sortable\">\n<thead><tr>"
        var headers = [
            "candidate", "status", "fidelity", "val \(metric)", "CI low", "CI high", "test \(metric)", "p50 ms",
            "size bytes", "FLOPs", "$ per 1M",
        ]
        if predicted { headers += ["predicted gap", "predicted ± 2 sd"] }
        for header in headers {
            html += "<th>\(escape(header))</th>"
        }
        html += "</tr></thead>\n<tbody>\n"
        for trial in report.candidates {
            var classes: [String] = []
            if report.frontier.contains(trial.id) { classes.append("frontier") }
            if trial.id == report.recommendation.candidate { classes.append("recommended") }
            let estimate = trial.metrics[metric]
            func cell(_ value: Double?, _ format: String) -> String {
                guard let value else { return "<td>—</td>" }
                return "<td data-v=\"\(value)\">\(String(format: format, value))</td>"
            }
            html +=
                "<tr class=\"\(classes.joined(separator: " "))\"><td>\(escape(trial.id))</td><td>\(trial.status.rawValue)</td>"
            html += cell(trial.fidelity, "%.3f") + cell(estimate?.value, "%.4f") + cell(estimate?.ci95.first, "%.4f")
            html += cell(estimate?.ci95.last, "%.4f") + cell(trial.testMetrics?[metric]?.value, "%.4f")
            html += cell(trial.latencyMsP50, "%.4f")
            html += "<td data-v=\"\(trial.sizeBytes)\">\(escape(ByteSize.format(trial.sizeBytes)))</td>"
            html +=
                "<td data-v=\"\(trial.flopsPerExample)\">\(trial.flopsPerExample)</td>"
                + cell(trial.costPer1MUSD, "%.6f")
            if predicted {
                html += cell(trial.predicted?.gap, "%+.4f") + cell(trial.predicted.map { 2 * $0.gapSD }, "%.4f")
            }
            html += "</tr>\n"
        }
        return html + "</tbody>\n</table>\n"
    }

    static func padded(_ low: Double, _ high: Double, by fraction: Double) -> (Double, Double) {
        let span = max(high - low, 1e-6)
        return (low - span * fraction, high + span * fraction)
    }

    static func escape(_ text: String) -> String { HTML.escape(text) }
}
