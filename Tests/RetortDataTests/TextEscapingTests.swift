import RetortData
import Testing

@Suite struct TextEscapingTests {
    @Test("CSV cells are quoted for commas, quotes and line breaks (RFC 4180), scalar by scalar")
    func csvFields() {
        #expect(CSV.field("plain") == "plain")
        #expect(CSV.field("a,b") == "\"a,b\"")
        #expect(CSV.field("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(CSV.field("two\nlines") == "\"two\nlines\"")
        #expect(CSV.field("cr\r\nlf") == "\"cr\r\nlf\"")
        // A quote followed by a combining mark is one Character but still a quote in the file.
        #expect(CSV.field("\"\u{301}") == "\"\"\"\u{301}\"")
        #expect(CSV.line(["id", "a,b", ""]) == "id,\"a,b\",")
    }

    @Test("HTML escaping covers &, <, >, \" and leaves everything else, a combining mark after < included")
    func htmlText() {
        #expect(
            HTML.escape("<b class=\"x\">Tom & Jerry</b>") == "&lt;b class=&quot;x&quot;&gt;Tom &amp; Jerry&lt;/b&gt;")
        #expect(HTML.escape("<\u{338}script>") == "&lt;\u{338}script&gt;")
        #expect(HTML.escape("café 東京 ✓") == "café 東京 ✓")
    }
}
