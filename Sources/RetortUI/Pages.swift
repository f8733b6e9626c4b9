import Foundation
import RetortData
import RetortHistory
import RetortReports
import RetortSearch

/// HTML of the UI's pages, rendered on the server (plain Swift strings, inline CSS and SVG, a little JavaScript, no
/// network references).
enum Pages {
    static func escape(_ text: String) -> String { HTML.escape(text) }

    static func query(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~/")))
            ?? text
    }

    static func seconds(_ value: Double) -> String {
        value < 1
            ? String(format: "%.0f ms", value * 1000)
            : value < 120
                ? String(format: "%.1f s", value)
                : String(
                    format: "%.0f min %02.0f s", (value / 60).rounded(.down), value.truncatingRemainder(dividingBy: 60))
    }

    static let style = """
        :root{color-scheme:light dark;--fg:#1d1d1f;--bg:#fff;--muted:#5f5f66;--line:#d2d2d7;--card:#f5f5f7;--accent:#0b57d0;
        --queued:#c7c7cc;--running:#f0a202;--done:#2e7d32;--pruned:#8e8e93;--failed:#c62828;--rec:#fff6d6}
        @media (prefers-color-scheme:dark){:root{--fg:#f5f5f7;--bg:#161617;--muted:#b0b0b6;--line:#424245;--card:#1f1f21;
        --accent:#8ab4f8;--queued:#48484a;--running:#f5b83d;--done:#4caf50;--pruned:#6e6e73;--failed:#ef5350;--rec:#3a3320}}
        *{box-sizing:border-box}
        body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg);margin:0}
        a{color:var(--accent)}a:focus-visible,button:focus-visible,select:focus-visible,[tabindex]:focus-visible,th:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
        .skip{position:absolute;left:-999px;top:0;background:var(--bg);padding:6px}.skip:focus{left:8px}
        header{border-bottom:1px solid var(--line);padding:10px 16px;display:flex;gap:16px;align-items:center;flex-wrap:wrap}
        header b{font-size:16px}nav{display:flex;gap:14px;flex-wrap:wrap}nav a[aria-current=page]{font-weight:700;text-decoration:none}
        main{padding:16px;max-width:1400px}
        h1{font-size:20px;margin:0 0 6px}h2{font-size:16px;margin:18px 0 8px}.meta,.muted{color:var(--muted)}
        section,.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px;margin:0 0 14px;overflow-x:auto}
        table{border-collapse:collapse;font-size:13px}td,th{padding:4px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
        td:first-child,th:first-child,td.l,th.l{text-align:left}th{background:var(--card);position:sticky;top:0;cursor:pointer}
        tr.frontier td:first-child{font-weight:700}tr.recommended{background:var(--rec)}
        .rec{background:var(--rec);border:1px solid var(--line);padding:8px 12px;border-radius:6px}
        .plots{display:flex;gap:16px;flex-wrap:wrap}svg{max-width:100%;height:auto}
        .plots svg,.figure svg{background:#fff;border:1px solid var(--line);border-radius:4px}
        .stages{display:flex;flex-wrap:wrap;gap:8px;align-items:stretch;list-style:none;padding:0;margin:0}
        .stage{border:1px solid var(--line);border-radius:8px;padding:8px 10px;min-width:120px;background:var(--bg)}
        .stage.running{border-color:var(--running);border-width:2px}.stage.done{border-color:var(--done)}.stage.pending{opacity:.6}
        .stage small{display:block;color:var(--muted)}.arrow{align-self:center;color:var(--muted)}
        .rungs{display:flex;flex-wrap:wrap;gap:14px;margin-top:10px}.rung{min-width:200px;flex:1 1 260px}
        .tiles{display:flex;flex-wrap:wrap;gap:4px;list-style:none;padding:0;margin:6px 0 0}
        .tile{display:inline-block;font-size:11px;padding:3px 6px;border-radius:4px;border:2px solid var(--queued);max-width:100%;overflow:hidden;text-overflow:ellipsis}
        .tile.running{border-color:var(--running);background:color-mix(in srgb,var(--running) 25%,transparent)}
        .tile.done{border-color:var(--done);background:color-mix(in srgb,var(--done) 22%,transparent)}
        .tile.pruned{border-color:var(--pruned);color:var(--muted);text-decoration:line-through}
        .tile.failed{border-color:var(--failed);background:color-mix(in srgb,var(--failed) 22%,transparent)}
        .legend .tile{margin-right:6px}
        .progress{height:10px;background:var(--queued);border-radius:5px;overflow:hidden;max-width:520px}
        .progress div{height:100%;background:var(--done)}
        .badge{font-size:12px;padding:1px 6px;border-radius:10px;border:1px solid var(--line)}
        .badge.running{border-color:var(--running)}.badge.interrupted{border-color:var(--failed)}
        .two{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(520px,100%),1fr));gap:14px}
        form.inline{display:flex;gap:8px;flex-wrap:wrap;align-items:end}select,button{font:inherit;padding:4px 6px;max-width:100%}
        @media (max-width:640px){main{padding:10px}td,th{padding:3px 5px}.arrow{display:none}.stage{flex:1 1 140px}}
        """

    /// A whole page.
    static func page(title: String, current: String, body: String, script: String = "", style extra: String = "")
        -> String
    {
        let links = [("Runs", "/"), ("Compare", "/compare"), ("History", "/history"), ("Spend", "/spend")]
        let nav = links.map { name, href in
            "<a href=\"\(href)\"\(name == current ? " aria-current=\"page\"" : "")>\(name)</a>"
        }.joined(separator: " ")
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/>
            <title>\(escape(title)) · Retort</title><style>\(style)\(extra)</style></head>
            <body><a class="skip" href="#main">Skip to content</a>
            <header><b>Retort</b><nav aria-label="Main">\(nav)</nav></header>
            <main id="main" tabindex="-1">\(body)</main>
            <script>\(HTMLReport.sortScript)\(script)</script>
            </body></html>

            """
    }

    // MARK: - Runs

    /// What a finished run recommends and saves, for the runs list.
    static func summary(_ report: RunReport) -> (recommendation: String, savings: String) {
        let recommendation = report.recommendation
        let teacherCost = report.teacher.costPer1MUSD
        switch recommendation.kind {
        case "student":
            let cost = report.candidates.first { $0.id == recommendation.candidate }?.costPer1MUSD
            return (
                "student \(recommendation.candidate ?? "")",
                ratio(teacherCost, cost).map { "\($0) lower cost per call" } ?? "—"
            )
        case "cascade":
            let coverage = recommendation.coverage.map { String(format: " (answers %.0f%%)", $0 * 100) } ?? ""
            return (
                "cascade \(recommendation.candidate ?? "")\(coverage)",
                ratio(teacherCost, recommendation.blendedCostPer1MUSD).map { "\($0) lower blended cost" } ?? "—"
            )
        default: return ("keep the teacher", "—")
        }
    }

    static func ratio(_ teacher: Double?, _ student: Double?) -> String? {
        guard let teacher, let student, student > 0, teacher > 0 else { return nil }
        let value = teacher / student
        return value >= 100 ? String(format: "×%.0f", value) : String(format: "×%.1f", value)
    }

    /// What the runs list shows of a run beyond its folder: from the report of a finished run, from the journal header
    /// of one in progress or interrupted.
    struct RunDetails: Sendable, Equatable {
        var task = "—"
        var strategy = "—"
        var recommendation = "—"
        var savings = "—"
        /// Whether the run's report was read (the run finished).
        var reported = false
        /// Whether the report or the journal header was read (a journal can be empty for a moment as a run starts).
        var read = false

        init(_ entry: RunEntry) {
            if entry.finished, let report = try? entry.report() {
                task = report.task
                strategy = report.search.strategy
                (recommendation, savings) = Pages.summary(report)
                (reported, read) = (true, true)
            } else if let header = try? JournalRecord.read(entry.journal).first {
                task = header.source.map { ($0 as NSString).lastPathComponent } ?? task
                strategy = header.options?["strategy"] ?? strategy
                read = true
            }
        }
    }

    static func runsList(_ entries: [RunEntry], root: URL, now: Date) -> String {
        var body =
            "<h1>Runs</h1><p class=\"meta\">Every run folder under <code>\(escape(root.path))</code>, newest first. "
        body += "A search started in another terminal shows up here by itself, and its state follows it.</p>"
        // Without runs the table is there but hidden: the live list fills it when the first run starts.
        body += "<section id=\"no-runs\"\(entries.isEmpty ? "" : " hidden")><p>No runs yet. Start one: "
        body += "<code>retort search --task DIR</code> or <code>make demo</code>.</p></section>"
        body += "<section\(entries.isEmpty ? " hidden" : "")><table class=\"sortable\" id=\"runs\"><thead><tr>"
        body += "<th>run</th><th class=\"l\">job</th>"
        body += "<th class=\"l\">task</th><th class=\"l\">started (UTC)</th><th class=\"l\">strategy</th>"
        body +=
            "<th class=\"l\">recommendation</th><th class=\"l\">savings</th><th class=\"l\">state</th></tr></thead><tbody>"
        for entry in entries {
            body += runRow(entry, details: RunDetails(entry), now: now)
        }
        return body + "</tbody></table></section>"
    }

    /// One row of the runs list, keyed by where the run ends up (`data-run`) so the live list can replace it.
    static func runRow(_ entry: RunEntry, details: RunDetails, now: Date) -> String {
        let state: String
        if details.reported {
            state = "<span class=\"badge\">finished</span>"
        } else if now.timeIntervalSince(entry.modified) < 120 {
            state = "<span class=\"badge running\">running</span>"
        } else {
            state = "<span class=\"badge interrupted\">interrupted</span>"
        }
        let started = entry.started.map { ISO8601DateFormatter().string(from: $0) } ?? entry.runId
        var row = "<tr data-run=\"\(escape(RunIndex.finalPath(of: entry.path)))\" data-id=\"\(escape(entry.runId))\">"
        row += "<td><a href=\"/run?path=\(query(entry.path))\">\(escape(entry.runId))</a></td>"
        row += "<td class=\"l\">\(escape(entry.job))</td><td class=\"l\">\(escape(details.task))</td>"
        row += "<td class=\"l\" data-v=\"\(escape(entry.runId))\">\(escape(started))</td>"
        row += "<td class=\"l\">\(escape(details.strategy))</td><td class=\"l\">\(escape(details.recommendation))</td>"
        row += "<td class=\"l\">\(escape(details.savings))</td><td class=\"l\">\(state)</td></tr>"
        return row
    }

    /// The runs list's live part: rows from `/runs/events` are inserted (newest first) or replace the row of the same
    /// run; without JavaScript the list is a plain page.
    static let runsScript = """
        (function () {
          var table = document.getElementById('runs');
          if (!table || !window.EventSource) return;
          var body = table.tBodies[0], events = new EventSource('/runs/events');
          function find(key) {
            return Array.prototype.find.call(body.rows, function (r) { return r.dataset.run === key; });
          }
          events.addEventListener('run', function (e) {
            var run = JSON.parse(e.data), holder = document.createElement('tbody'), old = find(run.key);
            holder.innerHTML = run.row;
            // An unchanged row stays (and keeps the focus); a changed one is replaced in place.
            if (old) {
              if (old.outerHTML !== holder.firstElementChild.outerHTML) body.replaceChild(holder.firstElementChild, old);
              return;
            }
            var next = Array.prototype.find.call(body.rows, function (r) { return r.dataset.id < run.id; });
            body.insertBefore(holder.firstElementChild, next || null);
            table.closest('section').hidden = false;
            document.getElementById('no-runs').hidden = true;
          });
          events.addEventListener('gone', function (e) {
            var old = find(JSON.parse(e.data).key);
            if (old) old.remove();
          });
        })();

        """

    // MARK: - Pipeline

    static func pipelineView(_ pipeline: Pipeline, now: Double) -> String {
        var html = ""
        if pipeline.queued > 0 || !pipeline.finished {
            let share = pipeline.queued == 0 ? 0 : Double(pipeline.done) / Double(pipeline.queued)
            html += "<p><b>\(pipeline.done)</b> of \(pipeline.queued) queued trials done"
            if let elapsed = pipeline.elapsed(now: now) { html += " · \(seconds(elapsed)) elapsed" }
            if let left = pipeline.remaining(now: now) {
                html += " · about \(seconds(left)) left for the queued trials"
            }
            if pipeline.finished { html += " · finished" }
            html += "</p><div class=\"progress\" role=\"progressbar\" aria-valuemin=\"0\" aria-valuemax=\"100\" "
            html += "aria-valuenow=\"\(Int(share * 100))\" aria-label=\"trials done\">"
            html += "<div style=\"width:\(String(format: "%.1f", share * 100))%\"></div></div>"
        }
        html += "<ol class=\"stages\" aria-label=\"Pipeline stages\">"
        for (index, stage) in pipeline.stages.enumerated() {
            let state = stage.started == nil ? "pending" : stage.ended == nil ? "running" : "done"
            var time = ""
            if let started = stage.started {
                time = seconds((stage.ended ?? now) - started) + (stage.ended == nil ? " so far" : "")
            }
            if index > 0 { html += "<li class=\"arrow\" aria-hidden=\"true\">→</li>" }
            html += "<li class=\"stage \(state)\" data-stage=\"\(escape(stage.name))\"><b>\(escape(stage.name))</b>"
            html += "<small>\(state)\(time.isEmpty ? "" : " · " + time)</small>"
            if let detail = stage.detail { html += "<small>\(escape(detail))</small>" }
            html += "</li>"
        }
        html += "</ol>"
        if !pipeline.rungs.isEmpty {
            html += "<p class=\"legend muted\">"
            for state in ["queued", "running", "done", "pruned", "failed"] {
                html += "<span class=\"tile \(state)\">\(state)</span>"
            }
            html += "</p><div class=\"rungs\">"
            for (index, rung) in pipeline.rungs.enumerated() {
                let label = "rung \(rung.index + 1) · fidelity \(String(format: "%.3f", rung.fidelity))"
                let total = rung.trials.count
                let finished = rung.trials.filter { $0.state != .queued && $0.state != .running }.count
                html +=
                    "<div class=\"rung\"><b>\(escape(label))</b> <span class=\"muted\">(\(finished)/\(total))</span>"
                html += "<ul class=\"tiles\" aria-label=\"\(escape(label)) trials\" data-rung=\"\(index)\">"
                for trial in rung.trials {
                    var title = "\(trial.candidate): \(trial.state.rawValue)"
                    if let seconds = trial.seconds { title += String(format: ", trained %.2f s", seconds) }
                    if let metric = trial.metric { title += String(format: ", %@ %.4f", pipeline.metric, metric) }
                    if trial.complete { title += ", training finished" }
                    html += "<li class=\"tile \(trial.state.rawValue)\" tabindex=\"0\" title=\"\(escape(title))\" "
                    html += "aria-label=\"\(escape(title))\" data-candidate=\"\(escape(trial.candidate))\" "
                    html += "data-state=\"\(trial.state.rawValue)\">\(escape(trial.candidate))</li>"
                }
                html += "</ul></div>"
            }
            html += "</div>"
        }
        return html
    }

    static func liveScript(path: String) -> String {
        """
        (function () {
          var path = \(jsonString(path)), box = document.getElementById('pipeline'), busy = false, again = false;
          function refresh() {
            if (busy) { again = true; return; }
            busy = true;
            fetch('/run/pipeline?path=' + encodeURIComponent(path)).then(function (r) { return r.text(); })
              .then(function (html) { box.innerHTML = html; })
              .finally(function () { busy = false; if (again) { again = false; setTimeout(refresh, 200); } });
          }
          var events = new EventSource('/events?path=' + encodeURIComponent(path));
          events.addEventListener('record', refresh);
          events.addEventListener('done', function (e) {
            events.close();
            location.href = '/run?path=' + encodeURIComponent(JSON.parse(e.data).path);
          });
        })();

        """
    }

    static func jsonString(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [text])) ?? Data("[\"\"]".utf8)
        return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
            .replacingOccurrences(of: "</", with: "<\\/")
    }

    // MARK: - Run

    static func runPage(entry: RunEntry, report: RunReport?, pipeline: Pipeline, now: Double) -> String {
        var body = ""
        guard let report else {
            body += "<h1>\(escape(entry.job)) · \(escape(entry.runId))</h1>"
            body += "<p class=\"meta\">In progress (or interrupted): this page follows the run's journal live. "
            body +=
                "Resume an interrupted run with <code>retort search --resume \(escape(entry.folder.path))</code>.</p>"
            body += "<section aria-live=\"polite\"><h2>Pipeline</h2><div id=\"pipeline\">"
            body += pipelineView(pipeline, now: now) + "</div></section>"
            return body
        }
        body += "<p class=\"meta\"><a href=\"/compare?a=\(query(entry.path))\">Compare with another run</a> · "
        body += "folder <code>\(escape(entry.folder.path))</code></p>"
        body += HTMLReport.content(report)
        body += cascadeSection(report)
        body += expectedVersusFound(report)
        body += "<section><h2>Pipeline</h2>" + pipelineView(pipeline, now: now) + "</section>"
        return body
    }

    /// Every frontier student's cascade curve: coverage against agreement on the covered inputs (validation), and
    /// the points as a table.
    static func cascadeSection(_ report: RunReport) -> String {
        guard let curves = report.cascades, !curves.isEmpty else { return "" }
        var html =
            "<section><h2>Cascade curves</h2><p class=\"meta\">The student answers when its \(report.confidenceName) is "
        html += "at least the threshold and the teacher answers the rest; thresholds placed on validation.</p>"
        let width = 460.0
        let height = 240.0
        let (left, right, top, bottom) = (48.0, 12.0, 12.0, 36.0)
        let agreements = curves.flatMap { $0.validation.compactMap { $0.agreement?.value } }
        let low = max(0, (agreements.min() ?? 0.8) - 0.01)
        func x(_ coverage: Double) -> Double { left + coverage * (width - left - right) }
        func y(_ value: Double) -> Double {
            top + (1 - (value - low) / max(1e-9, 1 - low)) * (height - top - bottom)
        }
        let palette = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1"]
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
        svg += "role=\"img\" aria-label=\"agreement on covered inputs against coverage\">"
        svg +=
            "<line x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(width - right)\" y2=\"\(height - bottom)\" stroke=\"#888\"/>"
        svg += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(height - bottom)\" stroke=\"#888\"/>"
        for tick in stride(from: 0.0, through: 1.0, by: 0.25) {
            svg +=
                "<text x=\"\(x(tick))\" y=\"\(height - bottom + 14)\" font-size=\"10\" text-anchor=\"middle\" fill=\"#333\">\(Int(tick * 100))%</text>"
        }
        for tick in [low, (low + 1) / 2, 1] {
            svg +=
                "<text x=\"\(left - 4)\" y=\"\(y(tick) + 3)\" font-size=\"10\" text-anchor=\"end\" fill=\"#333\">\(String(format: "%.3f", tick))</text>"
        }
        svg +=
            "<text x=\"\((left + width - right) / 2)\" y=\"\(height - 4)\" font-size=\"11\" text-anchor=\"middle\" fill=\"#333\">coverage (share the student answers)</text>"
        for (index, curve) in curves.enumerated() {
            let points = curve.validation.filter { $0.agreement != nil }.sorted { $0.coverage < $1.coverage }
            let color = palette[index % palette.count]
            let line = points.map { String(format: "%.1f,%.1f", x($0.coverage), y($0.agreement?.value ?? low)) }
            svg +=
                "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(line.joined(separator: " "))\"/>"
            svg +=
                "<text x=\"\(left + 6)\" y=\"\(top + 12 + Double(index) * 13)\" font-size=\"11\" fill=\"\(color)\">\(escape(curve.candidate))</text>"
        }
        svg += "</svg>"
        html += "<div class=\"figure\">" + svg + "</div>"
        let recommended = report.recommendation.kind == "cascade" ? report.recommendation : nil
        for curve in curves {
            html += "<h3>\(escape(curve.candidate))</h3><table><thead><tr><th>threshold</th><th>coverage</th>"
            html +=
                "<th>agreement on covered [95% CI]</th><th>blended $ per 1M</th><th>blended p50 ms</th></tr></thead><tbody>"
            for point in curve.validation {
                let chosen =
                    recommended?.candidate == curve.candidate
                    && abs((recommended?.threshold ?? -1) - point.threshold) < 1e-9
                var agreement = "—"
                if let estimate = point.agreement {
                    agreement = String(
                        format: "%.3f [%.3f, %.3f]", estimate.value, estimate.ci95.first ?? 0, estimate.ci95.last ?? 1)
                }
                html +=
                    "<tr\(chosen ? " class=\"recommended\"" : "")><td>\(String(format: "%.4f", point.threshold))</td>"
                html += "<td>\(String(format: "%.0f%%", point.coverage * 100))</td><td>\(agreement)</td>"
                html += "<td>\(point.blendedCostPer1MUSD.map { String(format: "%.2f", $0) } ?? "—")</td>"
                html += "<td>\(point.blendedLatencyMsP50.map { String(format: "%.4f", $0) } ?? "—")</td></tr>"
            }
            html += "</tbody></table>"
        }
        return html + "</section>"
    }

    /// The learned strategy's predictions beside what training measured.
    static func expectedVersusFound(_ report: RunReport) -> String {
        let metric = report.primaryMetric
        guard let teacher = report.teacher.validationMetrics[metric]?.value else { return "" }
        let rows = report.candidates.filter { $0.predicted != nil }
        guard !rows.isEmpty else { return "" }
        var html = "<section><h2>Expected vs found</h2><p class=\"meta\">What the history predicted before training "
        html += "(gap to the teacher on \(escape(metric)), ± 2 sd) and what training measured; untrained predictions "
        html += "stay predictions.</p><table class=\"sortable\"><thead><tr><th>candidate</th><th>predicted gap</th>"
        html += "<th>± 2 sd</th><th>measured gap</th><th>inside</th><th>predicted p50 ms</th><th>measured p50 ms</th>"
        html += "</tr></thead><tbody>"
        var inside = 0
        var measured = 0
        for candidate in rows {
            guard let prediction = candidate.predicted else { continue }
            let found = candidate.metrics[metric].map { $0.value - teacher }
            var within = "—"
            if let found {
                measured += 1
                let hit = abs(found - prediction.gap) <= 2 * prediction.gapSD
                if hit { inside += 1 }
                within = hit ? "yes" : "no"
            }
            html += "<tr><td>\(escape(candidate.id))</td><td>\(String(format: "%+.4f", prediction.gap))</td>"
            html += "<td>\(String(format: "%.4f", 2 * prediction.gapSD))</td>"
            html += "<td>\(found.map { String(format: "%+.4f", $0) } ?? "not trained")</td><td>\(within)</td>"
            html += "<td>\(prediction.latencyMsP50.map { String(format: "%.4f", $0) } ?? "—")</td>"
            html += "<td>\(candidate.latencyMsP50.map { String(format: "%.4f", $0) } ?? "—")</td></tr>"
        }
        html += "</tbody></table>"
        if measured > 0 {
            html += "<p>\(inside) of \(measured) measured gaps fell inside the predicted ± 2 sd.</p>"
        }
        return html + "</section>"
    }

    // MARK: - Compare

    static func comparePage(entries: [RunEntry], a: RunEntry?, b: RunEntry?) -> String {
        let finished = entries.filter(\.finished)
        func select(_ name: String, _ chosen: RunEntry?) -> String {
            var html = "<label>\(name == "a" ? "Run A" : "Run B")<br/><select name=\"\(name)\">"
            for entry in finished {
                let selected = entry.path == chosen?.path ? " selected" : ""
                html += "<option value=\"\(escape(entry.path))\"\(selected)>\(escape(entry.path))</option>"
            }
            return html + "</select></label>"
        }
        var body = "<h1>Compare two runs</h1><form class=\"inline card\" method=\"get\" action=\"/compare\">"
        body += select("a", a) + select("b", b) + "<button type=\"submit\">Compare</button></form>"
        guard let a, let b, let left = try? a.report(), let right = try? b.report() else {
            return body + (finished.count < 2 ? "<p>Two finished runs are needed.</p>" : "")
        }
        body += "<section>" + Markdown.html(RunComparison.markdown(left, right)) + "</section>"
        body += "<div class=\"two\"><section><h2>A: \(escape(a.path))</h2>"
        body += Markdown.html(FrontierTable.markdown(left)) + "</section>"
        body +=
            "<section><h2>B: \(escape(b.path))</h2>" + Markdown.html(FrontierTable.markdown(right)) + "</section></div>"
        return body
    }

    // MARK: - History

    static func historyPage(_ export: HistoryExport?, path: String, error: String?) -> String {
        var body = "<h1>History</h1><p class=\"meta\">The tasks Retort has learned from (<code>\(escape(path))</code>) "
        body += "and how well its predictions matched what training measured, run by run.</p>"
        if let error { return body + "<section><p>\(escape(error))</p></section>" }
        guard let export, !export.runs.isEmpty else {
            return body + "<section><p>The history is empty: finished searches record themselves into it.</p></section>"
        }
        // One row per task (its latest run), in two tables: label tasks and structured tasks have different
        // meta-features.
        let byTask = Dictionary(grouping: export.runs, by: \.taskId).values.compactMap { runs in
            runs.max(by: { $0.report.createdAt < $1.report.createdAt }).map { (latest: $0, runs: runs.count) }
        }.sorted { $0.latest.report.task < $1.latest.report.task }
        let labelTasks = byTask.filter { $0.latest.meta.structured == nil }
        let structuredTasks = byTask.compactMap { entry in entry.latest.meta.structured.map { (entry, $0) } }
        if !labelTasks.isEmpty {
            body += "<section><h2>Tasks</h2><table class=\"sortable\"><thead><tr><th>task</th><th class=\"l\">kind</th>"
            body += "<th>runs</th><th>train rows</th><th>classes</th><th>dimension</th><th>class entropy</th>"
            body += "<th>teacher mean max p</th><th>centroid probe</th><th>linear probe</th><th>curve slope</th>"
            body += "<th>gold-probe headroom</th>"
            body += "<th class=\"l\">latest recommendation</th></tr></thead><tbody>"
            for (latest, runs) in labelTasks {
                let meta = latest.meta
                body += "<tr><td>\(escape(latest.report.task))</td><td class=\"l\">\(escape(meta.kind))</td>"
                body += "<td>\(runs)</td><td>\(meta.rows)</td><td>\(meta.classes)</td><td>\(meta.dimension)</td>"
                body += String(
                    format: "<td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%+.4f</td>", meta.classEntropy,
                    meta.teacherMeanMaxProbability, meta.probeCentroidAccuracy, meta.probeLinearAccuracy,
                    meta.learningCurveSlope)
                body += "<td>\(meta.goldProbeHeadroom.map { String(format: "%+.3f", $0) } ?? "—")</td>"
                body += "<td class=\"l\">\(escape(summary(latest.report).recommendation))</td></tr>"
            }
            body += "</tbody></table></section>"
        }
        if !structuredTasks.isEmpty {
            body += "<section><h2>Structured tasks</h2><table class=\"sortable\"><thead><tr><th>task</th><th>runs</th>"
            body += "<th>train rows</th><th>keys</th><th>copied values</th><th>closed keys</th>"
            body += "<th>mean value set</th><th>optional keys</th><th>teacher invalid</th><th>field F1 probe</th>"
            body += "<th class=\"l\">latest recommendation</th></tr></thead><tbody>"
            for ((latest, runs), meta) in structuredTasks {
                body += "<tr><td>\(escape(latest.report.task))</td><td>\(runs)</td><td>\(latest.meta.rows)</td>"
                body += "<td>\(meta.keys)</td>"
                body += String(
                    format: "<td>%.3f</td><td>%.3f</td><td>%.1f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td>",
                    meta.copiedValueShare, meta.closedKeyShare, meta.meanValueSetSize, meta.optionalKeyShare,
                    meta.teacherInvalidShare, meta.probeFieldF1)
                body += "<td class=\"l\">\(escape(summary(latest.report).recommendation))</td></tr>"
            }
            body += "</tbody></table></section>"
        }

        // Prediction error of every run that had predictions, oldest first.
        var points: [(date: String, task: String, run: String, error: Double, inside: Double, count: Int)] = []
        // report.json's `search.calibration`, or (reports written before it) the same count from its candidates.
        for run in export.runs {
            let report = run.report
            guard let calibration = report.search.calibration ?? PredictionCalibration(trials: report.candidates)
            else { continue }
            points.append(
                (report.createdAt, report.task, run.id, calibration.mae, calibration.coverage, calibration.predicted))
        }
        points.sort { $0.date < $1.date }
        body += "<section><h2>Predictions against measurements, over time</h2>"
        if points.isEmpty {
            body += "<p>No run in the history used predictions yet (the learned strategy needs 3 tasks of a kind).</p>"
            return body + "</section>"
        }
        let width = 560.0
        let height = 200.0
        let top = max(points.map(\.error).max() ?? 0.01, 0.001)
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
        svg += "role=\"img\" aria-label=\"mean absolute gap error per run, oldest first\">"
        let step = points.count > 1 ? (width - 70) / Double(points.count - 1) : 0
        let coordinates = points.enumerated().map { index, point in
            (50 + Double(index) * step, 170 - point.error / top * 150)
        }
        svg += "<line x1=\"50\" y1=\"170\" x2=\"\(width - 20)\" y2=\"170\" stroke=\"#888\"/>"
        svg +=
            "<text x=\"46\" y=\"24\" font-size=\"10\" text-anchor=\"end\" fill=\"#333\">\(String(format: "%.3f", top))</text>"
        svg += "<text x=\"46\" y=\"173\" font-size=\"10\" text-anchor=\"end\" fill=\"#333\">0</text>"
        svg += "<polyline fill=\"none\" stroke=\"#4e79a7\" stroke-width=\"2\" points=\""
        svg += coordinates.map { String(format: "%.1f,%.1f", $0.0, $0.1) }.joined(separator: " ") + "\"/>"
        for (x, y) in coordinates {
            svg += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#4e79a7\"/>", x, y)
        }
        svg +=
            "<text x=\"\(width / 2)\" y=\"192\" font-size=\"11\" text-anchor=\"middle\" fill=\"#333\">runs, oldest first: mean |measured − predicted gap|</text></svg>"
        body += "<div class=\"figure\">" + svg + "</div>"
        body += "<table class=\"sortable\"><thead><tr><th>created</th><th class=\"l\">task</th><th class=\"l\">run</th>"
        body += "<th>trained with a prediction</th><th>MAE (mean |error|)</th><th>coverage (inside ± 2 sd)</th>"
        body += "</tr></thead><tbody>"
        for point in points {
            body += "<tr><td>\(escape(point.date))</td><td class=\"l\">\(escape(point.task))</td>"
            body += "<td class=\"l\">\(escape(point.run))</td><td>\(point.count)</td>"
            body += String(format: "<td>%.4f</td><td>%.0f%%</td></tr>", point.error, point.inside * 100)
        }
        let count = points.reduce(0) { $0 + $1.count }
        let inside = points.reduce(0) { $0 + $1.inside * Double($1.count) }
        let error = points.reduce(0) { $0 + $1.error * Double($1.count) }
        body += "</tbody></table>"
        body += String(
            format: "<p>Over all runs: %.0f of %d measured gaps inside the predicted ± 2 sd (%.0f%%, target ≥ 90%%), "
                + "mean absolute error %.4f.</p>", inside.rounded(), count, 100 * inside / Double(max(count, 1)),
            error / Double(max(count, 1)))
        return body + "</section>"
    }
}

/// The Markdown Retort writes (headings, tables, bold, code, lists, paragraphs) as HTML.
enum Markdown {
    static func html(_ markdown: String) -> String {
        var html = ""
        var table: [[String]] = []
        var list: [String] = []
        func inline(_ text: String) -> String {
            var escaped = Pages.escape(text)
            for (pattern, tag) in [(#"\*\*(.+?)\*\*"#, "b"), (#"`(.+?)`"#, "code")] {
                escaped = escaped.replacingOccurrences(
                    of: pattern, with: "<\(tag)>$1</\(tag)>", options: .regularExpression)
            }
            return escaped
        }
        func flush() {
            if !table.isEmpty {
                html += "<table class=\"sortable\"><thead><tr>"
                html += table[0].map { "<th>\(inline($0))</th>" }.joined() + "</tr></thead><tbody>"
                for row in table.dropFirst() {
                    html += "<tr>" + row.map { "<td>\(inline($0))</td>" }.joined() + "</tr>"
                }
                html += "</tbody></table>"
                table = []
            }
            if !list.isEmpty {
                html += "<ul>" + list.map { "<li>\(inline($0))</li>" }.joined() + "</ul>"
                list = []
            }
        }
        for raw in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("|") {
                if !list.isEmpty { flush() }
                let cells = line.dropFirst().dropLast(line.hasSuffix("|") ? 1 : 0).split(
                    separator: "|", omittingEmptySubsequences: false
                ).map { $0.trimmingCharacters(in: .whitespaces) }
                if cells.allSatisfy({ $0.allSatisfy { "-: ".contains($0) } }) { continue }
                table.append(cells)
                continue
            }
            flush()
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                let level = min(4, line.prefix { $0 == "#" }.count + 1)
                html += "<h\(level)>\(inline(line.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces)))</h\(level)>"
            } else if line.hasPrefix("- ") {
                list.append(String(line.dropFirst(2)))
            } else {
                html += "<p>\(inline(line))</p>"
            }
        }
        flush()
        return html
    }
}
