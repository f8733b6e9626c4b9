import Foundation
import Testing

@testable import RetortTeacher

/// One JSONTestSuite-style case: a name saying what it tries and the exact bytes of the text.
struct JSONCase: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]

    init(_ name: String, _ text: String) {
        self.name = name
        bytes = Array(text.utf8)
    }

    init(_ name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }

    var testDescription: String { name }
    var data: Data { Data(bytes) }
}

/// A case RFC 8259 leaves to the implementation (JSONTestSuite's `i_`), with what this parser decided.
struct ImplementationDefinedCase: Sendable, CustomTestStringConvertible {
    let json: JSONCase
    let accepted: Bool

    init(_ name: String, _ text: String, accepted: Bool) {
        json = JSONCase(name, text)
        self.accepted = accepted
    }

    init(_ name: String, bytes: [UInt8], accepted: Bool) {
        json = JSONCase(name, bytes: bytes)
        self.accepted = accepted
    }

    var testDescription: String { json.name + (accepted ? " (accepted)" : " (rejected)") }
}

/// The string of `values` (noncharacters such as U+FFFF included, which string literals refuse).
func scalars(_ values: UInt32...) -> String {
    String(String.UnicodeScalarView(values.compactMap(Unicode.Scalar.init)))
}

/// `["` + bytes + `"]`: a one-string array whose string holds raw `bytes`.
func stringArray(_ bytes: [UInt8]) -> [UInt8] { Array("[\"".utf8) + bytes + Array("\"]".utf8) }

/// RFC 8259 conformance in JSONTestSuite's layout (Seriot, "Parsing JSON is a Minefield", 2016): texts a parser
/// must accept (`y_`), must reject (`n_`), and may decide (`i_`, asserted as decided), by group.
@Suite struct JSONConformanceTests {
    // MARK: - Numbers

    /// Number texts that must parse, and keep their exact spelling.
    static let acceptedNumbers = [
        "0", "-0", "1", "-1", "123", "-123", "1.0", "0.1e-7", "123.456789", "-0.1", "20e1", "0e1", "0e+1", "0E-1",
        "1E22", "1E-2", "1E+2", "1e-2", "1e+2", "123e45", "123.456e78", "123e65", "1.5e+9999", "1E400",
        "12345678901234567891", "18446744073709551615", "1234567890123456789012345678901234567890",
        "-9223372036854775808", "9007199254740993",
        "-0.000000000000000000000000000000000000000000000000000000000000000000000000000001",
    ]

    @Test(arguments: acceptedNumbers)
    func yNumberKeepsItsText(_ text: String) throws {
        let alone = try JSON.parse(text)
        let number = try #require(JSONNumber(text))
        #expect(alone == .number(number))
        if case .number(let number) = alone { #expect(number.text == text) } else { Issue.record("not a number") }
        #expect(alone.text == text)
        let inArray = try JSON.parse("[ \(text) ]")
        #expect(inArray.text == "[\(text)]")
        let inObject = try JSON.parse("{\"n\":\(text)}")
        #expect(inObject.text == "{\"n\":\(text)}")
        #expect(try JSON.parse(inObject.text) == inObject)
    }

    /// Number texts that must be rejected, alone, in an array and as an object member.
    static let rejectedNumbers = [
        "+1", "01", ".5", "-01", "-012", "012", "00", "-", "--1", "++1234", "+Inf", "Inf", "-Inf", "Infinity",
        "-Infinity", "NaN", "-NaN", "nan", "1.", "-2.", "0.", "2.e3", "2.e+3", "2.e-3", "9.e+", "0.e1", "1.e1", ".2e-3",
        "-.123", ".-1", "1e", "1E", "0e", "0E", "1e+", "1e-", "0e+", "0E+", "0.3e", "0.3e+", "1.0e", "1.0e+", "1.0e-",
        "1eE2", "1ea", "1e\u{E5}", "1.2a-3", "1.8011670033376514H-308", "0x1", "0x42", "1_000", "1 000.0", "- 1",
        "-1x", "-foo", "1+2", "1.0.", "0.1.2", "1e1.5", "\u{FF11}", "\u{0661}", "\u{2212}1", "1\u{00B7}0",
    ]

    @Test(arguments: rejectedNumbers)
    func nNumberIsRejected(_ text: String) {
        for wrapped in [text, "[\(text)]", "{\"n\": \(text)}"] {
            #expect(throws: JSONParseError.self, "\(wrapped)") { try JSON.parse(wrapped) }
        }
    }

    @Test func numbersReadExactlyOnDemand() throws {
        func number(_ text: String) throws -> JSONNumber {
            guard case .number(let value) = try JSON.parse(text) else { throw JSONParseError(offset: 0, reason: text) }
            return value
        }
        #expect(try number("12345678901234567891").uint64 == 12_345_678_901_234_567_891)
        #expect(try number("12345678901234567891").int == nil)
        #expect(try number("12345678901234567891").int64 == nil)
        #expect(try number("18446744073709551615").uint64 == UInt64.max)
        #expect(try number("18446744073709551616").uint64 == nil)
        #expect(try number("9007199254740993").int == 9_007_199_254_740_993)
        #expect(try number("-9223372036854775808").int == Int.min)
        #expect(try number("-9223372036854775809").int64 == nil)
        #expect(try number("9223372036854775807").int64 == Int64.max)
        #expect(try number("9223372036854775808").int == nil)
        #expect(try number("1e2").int == 100)
        #expect(try number("100.0").int == 100)
        #expect(try number("0.1e1").int == 1)
        #expect(try number("-1.5e3").int == -1500)
        #expect(try number("1.5").int == nil)
        #expect(try number("1e-2").int == nil)
        #expect(try number("-0").int == 0)
        #expect(try number("-0").uint64 == 0)
        #expect(try number("-1").uint64 == nil)
        #expect(try number("1e99999999999999999999999").int == nil)
        #expect(try number("-0").double.map { $0 == 0 && $0.sign == .minus } == true)
        #expect(try number("0.1e-7").double == 1e-8)
        #expect(try number("1E400").double == nil)
        #expect(try number("-1E400").double == nil)
        #expect(try number("123e-10000000").double == 0)
        #expect(try number("1.0").double == 1)
        #expect(try JSON.parse("[1e2]")[0]?.int == 100)
        #expect(try JSON.parse("[2.5]")[0]?.double == 2.5)
    }

    @Test func numbersCompareByExactValue() throws {
        func json(_ text: String) throws -> JSON { try JSON.parse(text) }
        for same in ["40.0", "4e1", "400e-1", "0.4E+2", "40.000"] { #expect(try json(same) == json("40"), "\(same)") }
        #expect(try json("-0") == json("0"))
        #expect(try json("0.0e5") == json("-0.0"))
        #expect(try json("0.001") == json("1e-3"))
        #expect(try json("1e99999999999999999999999") == json("1e99999999999999999999999"))
        #expect(try json("12345678901234567891") != json("12345678901234567892"))
        #expect(
            try json("1234567890123456789012345678901234567890") != json("1234567890123456789012345678901234567891"))
        #expect(try json("1.5") != json("15"))
        #expect(try json("-1") != json("1"))
        #expect(try json("[1, 2.0]") == [1, 2])
    }

    @Test func numbersBuiltInCodeWriteAsBefore() throws {
        #expect(JSON.number(3.0).text == "3")
        #expect(JSON.number(-2.0).text == "-2")
        #expect(JSON.number(0.1).text == "0.1")
        #expect(JSON.number(-2.5e-5).text == "-2.5e-05")
        #expect(JSON.number(1e20).text == "1e+20")
        #expect(JSON.number(1e15).text == "1000000000000000.0")
        #expect(JSON.number(1e16).text == "1e+16")
        #expect(JSON.number(999_999_999_999_999).text == "999999999999999")
        #expect(JSON.number(.nan) == .null)
        #expect(JSON.number(.infinity) == .null)
        #expect(JSON.int(-7).text == "-7")
        #expect(JSON.int(Int.max).text == "9223372036854775807")
        #expect(JSON.number(JSONNumber(UInt64.max)).text == "18446744073709551615")
        #expect((2.5 as JSON).text == "2.5")
        #expect((42 as JSON).text == "42")
        #expect(JSONNumber("1.0")?.text == "1.0")
        for bad in ["01", "+1", "1.", "", " 1", "1 ", "NaN", "1e"] { #expect(JSONNumber(bad) == nil, "\(bad)") }
        // Whatever a Double writes, the parser reads back to the same Double.
        for value in [0.1, -1e-300, Double.leastNonzeroMagnitude, 1.7976931348623157e308, 123456.789, 1e15, -0.0] {
            #expect(try JSON.parse(JSON.number(value).text).double == value, "\(value)")
        }
    }

    @Test func writerEscapesOnlyQuotesBackslashesAndControlCharacters() throws {
        var all = ""
        for code in 0..<0x80 { all.unicodeScalars.append(Unicode.Scalar(UInt8(code))) }
        let expected =
            #""\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\u0008\t\n\u000b\u000c\r\u000e\u000f"#
            + #"\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f"#
            + ##" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"##
            + "\u{7F}\""
        #expect(JSON.string(all).text == expected)
        #expect(try JSON.parse(expected).string == all)
        let text = #"{"z":[],"a":{"é\n":"日本語 😀","b":"\u2028"},"m":[1,-2.50,null,true,false,""]}"#
        let written = #"{"a":{"b":""# + "\u{2028}" + #"","é\n":"日本語 😀"},"m":[1,-2.50,null,true,false,""],"z":[]}"#
        #expect(try JSON.parse(text).text == written)
        #expect(try JSON.parse(text).data == Data(try JSON.parse(text).text.utf8))
    }

    @Test func codableKeeps64BitIntegersExact() throws {
        let text = #"{"big":12345678901234567891,"neg":-9223372036854775808,"x":2.5,"s":"a","b":true,"n":null}"#
        let decoded = try JSONDecoder().decode(JSON.self, from: Data(text.utf8))
        #expect(decoded == (try JSON.parse(text)))
        #expect(decoded["big"]?.text == "12345678901234567891")
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let encoded = String(decoding: try encoder.encode(try JSON.parse(text)), as: UTF8.self)
        #expect(encoded.contains("12345678901234567891") && encoded.contains("-9223372036854775808"))
        #expect(throws: EncodingError.self) { try JSONEncoder().encode(try JSON.parse("[1E400]")) }
    }

    // MARK: - Strings and escapes

    /// Strings that must parse: the JSON text and the string it holds.
    static let acceptedStrings: [(String, String)] = [
        (#"[""]"#, ""),
        (#"[" "]"#, " "),
        (#"["asd "]"#, "asd "),
        (#"["\"\\\/\b\f\n\r\t"]"#, "\"\\/\u{08}\u{0C}\n\r\t"),
        (#"["\\u0000"]"#, "\\u0000"),
        (#"["\u0000"]"#, "\u{0}"),
        (#"["a\u0000b"]"#, "a\u{0}b"),
        (#"["\u001F"]"#, "\u{1F}"),
        (#"["\u002c"]"#, ","),
        (#"["\u005C"]"#, "\\"),
        (#"["\u0060\u012a\u12AB"]"#, "`\u{12A}\u{12AB}"),
        (#"["\u00A0"]"#, "\u{A0}"),
        (#"["\u200B"]"#, "\u{200B}"),
        (#"["\u2028\u2029"]"#, "\u{2028}\u{2029}"),
        (#"["\uFDD0"]"#, scalars(0xFDD0)),
        (#"["\uFFFE\uFFFF"]"#, scalars(0xFFFE, 0xFFFF)),
        (#"["\uD801\udc37"]"#, "\u{10437}"),
        (#"["\ud83d\ude39\ud83d\udc8d"]"#, "\u{1F639}\u{1F48D}"),
        (#"["\uD834\uDd1e"]"#, "\u{1D11E}"),
        (#"["\ud800\udc00"]"#, "\u{10000}"),
        (#"["\uDBFF\uDFFF"]"#, scalars(0x10FFFF)),
        (#"["\uD834\uDD1E\u0041"]"#, "\u{1D11E}A"),
        (#"["new\u000Aline"]"#, "new\nline"),
        (#"["π"]"#, "π"),
        (#"["日本語"]"#, "日本語"),
        (#"["€𝄞"]"#, "€𝄞"),
        ("[\"\u{2028}\u{2029}\"]", "\u{2028}\u{2029}"),
        ("[\"a\u{7F}a\"]", "a\u{7F}a"),
        ("[\"" + scalars(0xFFFF, 0x10FFFF) + "\"]", scalars(0xFFFF, 0x10FFFF)),
        (#"["é\n\u00e9"]"#, "é\n\u{E9}"),
        (#""a string alone""#, "a string alone"),
    ]

    @Test(arguments: acceptedStrings)
    func yStringDecodes(_ text: String, _ expected: String) throws {
        let parsed = try JSON.parse(text)
        let value = parsed.string ?? parsed[0]?.string
        #expect(value?.unicodeScalars.elementsEqual(expected.unicodeScalars) == true)
        let again = try JSON.parse(parsed.text)
        #expect((again.string ?? again[0]?.string)?.unicodeScalars.elementsEqual(expected.unicodeScalars) == true)
    }

    /// Strings that must be rejected.
    static let rejectedStrings = [
        JSONCase("n_string_escape_x", #"["\x00"]"#),
        JSONCase("n_string_invalid_backslash_esc", #"["\a"]"#),
        JSONCase("n_string_escaped_single_quote", #"["\'"]"#),
        JSONCase("n_string_escaped_zero", #"["\0"]"#),
        JSONCase("n_string_unicode_CapitalU", #"["\UA66D"]"#),
        JSONCase("n_string_incomplete_escaped_character", #"["\u00A"]"#),
        JSONCase("n_string_invalid_unicode_escape", #"["\uqqqq"]"#),
        JSONCase("n_string_u_with_sign", #"["\u+0041"]"#),
        JSONCase("n_string_u_with_space", #"["\u 041"]"#),
        JSONCase("n_string_1_surrogate_then_escape_u", #"["\uD800\u"]"#),
        JSONCase("n_string_1_surrogate_then_escape_u1", #"["\uD800\u1"]"#),
        JSONCase("n_string_1_surrogate_then_escape_u1x", #"["\uD800\u1x"]"#),
        JSONCase("n_string_incomplete_surrogate_escape_invalid", #"["\uD800\uD800\x"]"#),
        JSONCase("n_string_incomplete_escape", #"["\"]"#),
        JSONCase("n_string_start_escape_unclosed", #"["\"#),
        JSONCase("n_string_backslash_00", "[\"\\\u{0}\"]"),
        JSONCase("n_string_escaped_ctrl_char_tab", "[\"\\\t\"]"),
        JSONCase("n_string_escaped_emoji", "[\"\\🌀\"]"),
        JSONCase("n_string_escaped_backslash_bad", #"["\\\"]"#),
        JSONCase("n_string_unescaped_ctrl_char", "[\"a\u{0}a\"]"),
        JSONCase("n_string_unescaped_0x01", "[\"\u{1}\"]"),
        JSONCase("n_string_unescaped_0x1F", "[\"\u{1F}\"]"),
        JSONCase("n_string_unescaped_newline", "[\"new\nline\"]"),
        JSONCase("n_string_unescaped_tab", "[\"\t\"]"),
        JSONCase("n_string_unescaped_cr", "[\"\r\"]"),
        JSONCase("n_string_unescaped_ctrl_after_escape", "[\"\\n\u{8}\"]"),
        JSONCase("n_string_single_quote", "['single quote']"),
        JSONCase("n_string_single_doublequote", "\""),
        JSONCase("n_string_single_string_no_double_quotes", "abc"),
        JSONCase("n_string_no_quotes_with_bad_escape", #"[\n]"#),
        JSONCase("n_string_leading_uescaped_thinspace", #"[\u0020"asd"]"#),
        JSONCase("n_string_unterminated", #"["abc"#),
        JSONCase("n_string_unterminated_after_escape", #"["a\u0041"#),
        JSONCase("n_string_with_trailing_garbage", #""a"x"#),
        JSONCase("n_string_accentuated_char_no_quotes", "[é]"),
        JSONCase("n_string_1_escaped_invalid_codepoint_then_garbage", #"["\{["\{["\{["\{"#),
    ]

    @Test(arguments: rejectedStrings)
    func nStringIsRejected(_ test: JSONCase) {
        expectRejected(test)
    }

    // MARK: - Structure and nesting depth

    static let acceptedStructures = [
        JSONCase("y_array_empty", "[]"),
        JSONCase("y_object_empty", "{}"),
        JSONCase("y_array_arraysWithSpaces", "[[]   ]"),
        JSONCase("y_array_empty-string", #"[""]"#),
        JSONCase("y_array_heterogeneous", #"[null, 1, "1", {}]"#),
        JSONCase("y_array_with_several_null", "[1,null,null,null,2]"),
        JSONCase("y_array_false", "[false]"),
        JSONCase("y_array_ending_with_newline", "[\"a\"]\n"),
        JSONCase("y_array_with_leading_space", " [1]"),
        JSONCase("y_array_with_trailing_space", "[2] "),
        JSONCase("y_structure_whitespace_array", " [] "),
        JSONCase(
            "y_structure_all_whitespace_kinds", "\t\r\n [ \t\r\n1 \t\r\n, \t\r\n{ \t\r\n\"a\" \t\r\n: \t\r\n2 }] \t\r\n"
        ),
        JSONCase("y_structure_lonely_null", "null"),
        JSONCase("y_structure_lonely_true", "true"),
        JSONCase("y_structure_lonely_false", "false"),
        JSONCase("y_structure_lonely_int", "42"),
        JSONCase("y_structure_lonely_negative_real", "-0.1"),
        JSONCase("y_structure_lonely_string", #""asd""#),
        JSONCase("y_structure_string_empty", #""""#),
        JSONCase("y_structure_true_in_array", "[true]"),
        JSONCase("y_object_basic", #"{"asd":"sdf"}"#),
        JSONCase("y_object_simple", #"{"a":[]}"#),
        JSONCase("y_object_empty_key", #"{"":0}"#),
        JSONCase("y_object_escaped_null_in_key", #"{"foo\u0000bar": 42}"#),
        JSONCase("y_object_long_strings", #"{"x":[{"id": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}], "id": "xxx"}"#),
        JSONCase(
            "y_object_string_unicode", #"{"title":"\u041f\u043e\u043b\u0442\u043e\u0440\u0430 \u0417\u0435\u043c"}"#),
        JSONCase("y_object_nested", #"{"a":[{"b":{"c":[1,{"d":null}]}}],"e":{"f":[[],{}]}}"#),
        JSONCase("y_object_with_newlines", "{\n\"a\": \"b\"\n}"),
        JSONCase(
            "y_structure_512_nested_arrays", String(repeating: "[", count: 512) + String(repeating: "]", count: 512)),
        JSONCase(
            "y_structure_512_nested_objects",
            String(repeating: #"{"a":"#, count: 511) + "{}" + String(repeating: "}", count: 511)),
    ]

    @Test(arguments: acceptedStructures)
    func yStructureParsesAndRoundTrips(_ test: JSONCase) throws {
        let parsed = try JSON.parse(test.data)
        #expect(try JSON.parse(parsed.data) == parsed)
    }

    @Test func duplicateKeysKeepTheLastValue() throws {
        #expect(try JSON.parse(#"{"a":"b","a":"c"}"#) == ["a": "c"])
        #expect(try JSON.parse(#"{"a":1,"a":1}"#) == ["a": 1])
    }

    static let rejectedStructures = [
        JSONCase("n_structure_no_data", ""),
        JSONCase("n_single_space", " "),
        JSONCase("n_structure_whitespace_only", "\t\r\n"),
        JSONCase("n_structure_lone-open-bracket", "["),
        JSONCase("n_structure_lone-open-brace", "{"),
        JSONCase("n_structure_end_array", "]"),
        JSONCase("n_structure_end_object", "}"),
        JSONCase("n_array_trailing_comma", "[1,]"),
        JSONCase("n_array_comma_and_number", "[,1]"),
        JSONCase("n_array_just_comma", "[,]"),
        JSONCase("n_array_double_comma", "[1,,2]"),
        JSONCase("n_array_missing_value", #"[   , ""]"#),
        JSONCase("n_array_1_true_without_comma", "[1 true]"),
        JSONCase("n_array_colon_instead_of_comma", #"["": 1]"#),
        JSONCase("n_array_incomplete", #"["x""#),
        JSONCase("n_array_newlines_unclosed", "[\"a\",\n4\n,1,"),
        JSONCase("n_array_unclosed_with_object_inside", "[{}"),
        JSONCase("n_array_star_inside", "[*]"),
        JSONCase("n_object_missing_colon", #"{"a" b}"#),
        JSONCase("n_object_missing_semicolon_value", #"{"a" 1}"#),
        JSONCase("n_object_missing_value", #"{"a":}"#),
        JSONCase("n_object_missing_key", #"{:"b"}"#),
        JSONCase("n_object_trailing_comma", #"{"id":0,}"#),
        JSONCase("n_object_lone_comma", "{,}"),
        JSONCase("n_object_double_colon", #"{"x"::"b"}"#),
        JSONCase("n_object_non_string_key", "{1:1}"),
        JSONCase("n_object_null_key", "{null:null}"),
        JSONCase("n_object_single_quote", "{'a':0}"),
        JSONCase("n_object_unquoted_key", "{a: \"b\"}"),
        JSONCase("n_object_garbage_after_value", #"{"a":"a" 123}"#),
        JSONCase("n_object_comment", #"{"a":/*comment*/"b"}"#),
        JSONCase("n_object_unterminated-value", #"{"a":"a"#),
        JSONCase("n_object_emoji", "{🇨🇭}"),
        JSONCase("n_structure_open_object_close_array", "{]"),
        JSONCase("n_structure_open_array_close_object", "[}"),
        JSONCase("n_structure_open_array_object", "[{]"),
        JSONCase("n_structure_object_array_unclosed", #"{"a":[}"#),
        JSONCase("n_incomplete_null", "[nul]"),
        JSONCase("n_incomplete_true", "[tru]"),
        JSONCase("n_incomplete_false", "[fals]"),
        JSONCase("n_literal_truncated", "nul"),
        JSONCase("n_structure_capitalized_True", "[True]"),
        JSONCase("n_structure_NULL", "NULL"),
        JSONCase("n_structure_whitespace_formfeed", "[\u{0C}]"),
        JSONCase("n_structure_whitespace_vertical_tab", "[\u{0B}1]"),
        JSONCase("n_structure_whitespace_nbsp", "[\u{A0}1]"),
        JSONCase("n_structure_whitespace_U+2060_word_joiner", "[\u{2060}]"),
        JSONCase("n_structure_null-byte-outside-string", "[\u{0}]"),
        JSONCase("n_structure_U+FEFF_in_array", "[\u{FEFF}]"),
        JSONCase("n_structure_angle_bracket_null", "[<null>]"),
        JSONCase("n_structure_angle_bracket_dot", "<.>"),
        JSONCase("n_structure_ascii-unicode-identifier", "aå"),
        JSONCase("n_structure_unicode-identifier", "å"),
        JSONCase("n_structure_single_star", "*"),
        JSONCase("n_structure_uescaped_LF_before_string", #"[\u000A""]"#),
        JSONCase(
            "n_structure_513_nested_arrays", String(repeating: "[", count: 513) + String(repeating: "]", count: 513)),
        JSONCase(
            "n_structure_513_nested_objects",
            String(repeating: #"{"a":"#, count: 512) + "{}" + String(repeating: "}", count: 512)),
        JSONCase("n_structure_100000_opening_arrays", String(repeating: "[", count: 100_000)),
        JSONCase("n_structure_open_array_object_100000", String(repeating: #"[{"":"#, count: 50_000)),
        JSONCase(
            "n_structure_100000_closed_arrays",
            String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)),
    ]

    @Test(arguments: rejectedStructures)
    func nStructureIsRejected(_ test: JSONCase) {
        expectRejected(test)
    }

    // MARK: - Trailing garbage

    static let trailingGarbage = [
        JSONCase("n_structure_array_trailing_garbage", "[1]x"),
        JSONCase("n_object_trailing_comment_hash", #"{"a":"b"}#"#),
        JSONCase("n_structure_trailing_#", #"{"a":"b"}#{}"#),
        JSONCase("n_object_trailing_comment", #"{"a":"b"}/**/"#),
        JSONCase("n_object_trailing_comment_slash", "[1]//"),
        JSONCase("n_structure_array_with_extra_array_close", "[1]]"),
        JSONCase("n_structure_object_with_extra_close", #"{"a":1}}"#),
        JSONCase("n_structure_close_unopened_array", "1]"),
        JSONCase("n_structure_double_array", "[][]"),
        JSONCase("n_structure_two_objects", "{}{}"),
        JSONCase("n_structure_two_values_space", "1 2"),
        JSONCase("n_structure_two_strings", #""a" "b""#),
        JSONCase("n_structure_two_arrays_space", "[] []"),
        JSONCase("n_structure_trailing_comma", #"{"a":1},"#),
        JSONCase("n_structure_null_then_letters", "nulls"),
        JSONCase("n_structure_true_then_false", "truefalse"),
        JSONCase("n_structure_number_then_letters", "123abc"),
        JSONCase("n_structure_trailing_nul_byte", "[]\u{0}"),
        JSONCase("n_structure_trailing_formfeed", "[1]\u{0C}"),
        JSONCase("n_structure_trailing_vertical_tab", "\"abc\"\u{0B}"),
        JSONCase("n_structure_trailing_nbsp", "[1]\u{A0}"),
        JSONCase("n_structure_trailing_BOM", "{}\u{FEFF}"),
        JSONCase("n_structure_trailing_after_whitespace", "[1]\r\n\tX"),
        JSONCase("n_structure_trailing_bad_utf8", bytes: Array("[1]".utf8) + [0xFF]),
    ]

    @Test(arguments: trailingGarbage)
    func nTrailingGarbageIsRejected(_ test: JSONCase) {
        expectRejected(test)
    }

    // MARK: - UTF-8

    /// Valid UTF-8 at the edges of each sequence length, and the scalar each decodes to.
    static let acceptedUTF8: [([UInt8], UInt32)] = [
        ([0x7F], 0x7F), ([0xC2, 0x80], 0x80), ([0xDF, 0xBF], 0x7FF), ([0xE0, 0xA0, 0x80], 0x800),
        ([0xED, 0x9F, 0xBF], 0xD7FF), ([0xEE, 0x80, 0x80], 0xE000), ([0xEF, 0xBF, 0xBF], 0xFFFF),
        ([0xF0, 0x90, 0x80, 0x80], 0x10000), ([0xF4, 0x8F, 0xBF, 0xBF], 0x10FFFF), ([0xF3, 0xBF, 0xBF, 0xBF], 0xFFFFF),
    ]

    @Test(arguments: acceptedUTF8)
    func yUTF8Decodes(_ bytes: [UInt8], _ scalar: UInt32) throws {
        for text in [stringArray(bytes), stringArray(Array(#"\n"#.utf8) + bytes)] {
            let value = try #require(try JSON.parse(Data(text))[0]?.string)
            #expect(value.unicodeScalars.last?.value == scalar)
        }
    }

    /// Invalid UTF-8 inside a string, as bytes; each also checked after an escape (the parser's slower path).
    static let invalidUTF8 = [
        JSONCase("n_string_lone_continuation_byte", bytes: [0x80]),
        JSONCase("n_string_lone_continuation_byte_BF", bytes: [0xBF]),
        JSONCase("n_string_continuation_bytes_only", bytes: [0x81, 0x82]),
        JSONCase("n_string_overlong_2_bytes_C0", bytes: [0xC0, 0xAF]),
        JSONCase("n_string_overlong_2_bytes_C1", bytes: [0xC1, 0xBF]),
        JSONCase("n_string_overlong_3_bytes", bytes: [0xE0, 0x80, 0xAF]),
        JSONCase("n_string_overlong_3_bytes_max", bytes: [0xE0, 0x9F, 0xBF]),
        JSONCase("n_string_overlong_4_bytes", bytes: [0xF0, 0x80, 0x80, 0xAF]),
        JSONCase("n_string_overlong_4_bytes_max", bytes: [0xF0, 0x8F, 0xBF, 0xBF]),
        JSONCase("n_string_overlong_6_bytes", bytes: [0xFC, 0x83, 0xBF, 0xBF, 0xBF, 0xBF]),
        JSONCase("n_string_UTF8_surrogate_U+D800", bytes: [0xED, 0xA0, 0x80]),
        JSONCase("n_string_UTF8_surrogate_U+DFFF", bytes: [0xED, 0xBF, 0xBF]),
        JSONCase("n_string_UTF8_surrogate_pair_CESU-8", bytes: [0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80]),
        JSONCase("n_string_not_in_unicode_range_F4_90", bytes: [0xF4, 0x90, 0x80, 0x80]),
        JSONCase("n_string_not_in_unicode_range_F4_BF", bytes: [0xF4, 0xBF, 0xBF, 0xBF]),
        JSONCase("n_string_byte_F5", bytes: [0xF5, 0x80, 0x80, 0x80]),
        JSONCase("n_string_byte_F8_5_bytes", bytes: [0xF8, 0x88, 0x80, 0x80, 0x80]),
        JSONCase("n_string_byte_FE", bytes: [0xFE]),
        JSONCase("n_string_byte_FF", bytes: [0xFF]),
        JSONCase("n_string_iso_latin_1", bytes: [0xE9]),
        JSONCase("n_string_truncated_2_bytes", bytes: [0xC3]),
        JSONCase("n_string_truncated_3_bytes", bytes: [0xE6, 0x97]),
        JSONCase("n_string_truncated_4_bytes", bytes: [0xF0, 0x9F, 0x98]),
        JSONCase("n_string_truncated_then_ascii", bytes: [0xE2, 0x82, 0x41]),
        JSONCase("n_string_lead_then_lead", bytes: [0xC3, 0xC3, 0xA9]),
    ]

    @Test(arguments: invalidUTF8)
    func nInvalidUTF8IsRejected(_ test: JSONCase) {
        expectRejected(JSONCase(test.name, bytes: stringArray(test.bytes)), reason: "UTF-8")
        expectRejected(
            JSONCase(test.name + " after an escape", bytes: stringArray([0x5C, 0x6E] + test.bytes)), reason: "UTF-8")
        expectRejected(
            JSONCase(test.name + " in a key", bytes: Array("{\"".utf8) + test.bytes + Array("\":1}".utf8)),
            reason: "UTF-8")
    }

    @Test func invalidUTF8OutsideStringsAndTruncatedAtTheEndIsRejected() {
        expectRejected(JSONCase("n_structure_incomplete_UTF8_BOM", bytes: [0xEF, 0xBB, 0x7B, 0x7D]))
        expectRejected(JSONCase("n_array_invalid_utf8", bytes: [0x5B, 0xFF, 0x5D]))
        expectRejected(JSONCase("n_array_a_invalid_utf8", bytes: [0x5B, 0x61, 0xE5, 0x5D]))
        expectRejected(JSONCase("n_string_truncated_at_end_of_text", bytes: [0x5B, 0x22, 0xE2, 0x82]))
        expectRejected(JSONCase("n_string_truncated_at_end_after_escape", bytes: [0x22, 0x5C, 0x6E, 0xF0, 0x9F]))
    }

    // MARK: - Implementation-defined cases, as decided

    static let implementationDefined = [
        // Lone surrogates in escapes: rejected (a Swift String cannot hold one; replacing it would change the text).
        ImplementationDefinedCase("i_string_1st_surrogate_but_2nd_missing", #"["\uDADA"]"#, accepted: false),
        ImplementationDefinedCase("i_string_1st_valid_surrogate_2nd_invalid", #"["\uD888\u1234"]"#, accepted: false),
        ImplementationDefinedCase("i_string_incomplete_surrogate_and_escape_valid", #"["\uD800\n"]"#, accepted: false),
        ImplementationDefinedCase("i_string_incomplete_surrogate_pair", #"["\uDd1ea"]"#, accepted: false),
        ImplementationDefinedCase(
            "i_string_incomplete_surrogates_escape_valid", #"["\uD800\uD800\n"]"#, accepted: false),
        ImplementationDefinedCase("i_string_invalid_lonely_surrogate", #"["\ud800"]"#, accepted: false),
        ImplementationDefinedCase("i_string_invalid_surrogate", #"["\ud800abc"]"#, accepted: false),
        ImplementationDefinedCase("i_string_inverted_surrogates_U+1D11E", #"["\uDd1e\uD834"]"#, accepted: false),
        ImplementationDefinedCase("i_string_lone_second_surrogate", #"["\uDFAA"]"#, accepted: false),
        ImplementationDefinedCase("i_object_key_lone_2nd_surrogate", #"{"\uDFAA":0}"#, accepted: false),
        // Invalid UTF-8 and other encodings: rejected.
        ImplementationDefinedCase(
            "i_string_UTF-8_invalid_sequence", bytes: stringArray([0xE6, 0x97, 0xA5, 0xD1, 0x88, 0xFA]), accepted: false
        ),
        ImplementationDefinedCase(
            "i_string_UTF8_surrogate_U+D800", bytes: stringArray([0xED, 0xA0, 0x80]), accepted: false),
        ImplementationDefinedCase(
            "i_string_not_in_unicode_range", bytes: stringArray([0xF4, 0xBF, 0xBF, 0xBF]), accepted: false),
        ImplementationDefinedCase(
            "i_string_overlong_sequence_2_bytes", bytes: stringArray([0xC0, 0xAF]), accepted: false),
        ImplementationDefinedCase("i_string_truncated-utf-8", bytes: stringArray([0xE0, 0xFF]), accepted: false),
        ImplementationDefinedCase(
            "i_string_UTF-16LE_with_BOM",
            bytes: [0xFF, 0xFE, 0x5B, 0x00, 0x22, 0x00, 0xE9, 0x00, 0x22, 0x00, 0x5D, 0x00], accepted: false),
        ImplementationDefinedCase(
            "i_string_utf16BE_no_BOM", bytes: [0x00, 0x5B, 0x00, 0x22, 0x00, 0xE9, 0x00, 0x22, 0x00, 0x5D],
            accepted: false),
        ImplementationDefinedCase(
            "i_string_utf16LE_no_BOM", bytes: [0x5B, 0x00, 0x22, 0x00, 0xE9, 0x00, 0x22, 0x00, 0x5D, 0x00],
            accepted: false),
        // A byte order mark: rejected (RFC 8259 §8.1: implementations MUST NOT add one, MAY ignore one).
        ImplementationDefinedCase(
            "i_structure_UTF-8_BOM_empty_object", bytes: [0xEF, 0xBB, 0xBF, 0x7B, 0x7D], accepted: false),
        ImplementationDefinedCase("n_structure_UTF8_BOM_no_data", bytes: [0xEF, 0xBB, 0xBF], accepted: false),
        // Nesting: up to 512 levels.
        ImplementationDefinedCase(
            "i_structure_500_nested_arrays", String(repeating: "[", count: 500) + String(repeating: "]", count: 500),
            accepted: true),
        // Numbers beyond Double's range or precision: accepted and kept as text.
        ImplementationDefinedCase("i_number_double_huge_neg_exp", "[123.456e-789]", accepted: true),
        ImplementationDefinedCase(
            "i_number_huge_exp",
            "[0.4e" + String(repeating: "9", count: 100) + "69999999006]",
            accepted: true),
        ImplementationDefinedCase("i_number_neg_int_huge_exp", "[-1e+9999]", accepted: true),
        ImplementationDefinedCase("i_number_pos_double_huge_exp", "[1.5e+9999]", accepted: true),
        ImplementationDefinedCase("i_number_real_neg_overflow", "[-123123e100000]", accepted: true),
        ImplementationDefinedCase("i_number_real_pos_overflow", "[123123e100000]", accepted: true),
        ImplementationDefinedCase("i_number_real_underflow", "[123e-10000000]", accepted: true),
        ImplementationDefinedCase("i_number_too_big_neg_int", "[-123123123123123123123123123123]", accepted: true),
        ImplementationDefinedCase("i_number_too_big_pos_int", "[100000000000000000000]", accepted: true),
        ImplementationDefinedCase(
            "i_number_very_big_negative_int", "[-237462374673276894279832749832423479823246327846]", accepted: true),
    ]

    @Test(arguments: implementationDefined)
    func iCaseFollowsTheDecision(_ test: ImplementationDefinedCase) throws {
        if test.accepted {
            let parsed = try JSON.parse(test.json.data)
            #expect(parsed.data == Data(test.json.bytes), "kept byte for byte")
        } else {
            expectRejected(test.json)
        }
    }

    @Test func hugeNumbersKeepTheirTextButReadAsNilOrZero() throws {
        #expect(try JSON.parse("[1.5e+9999]")[0]?.double == nil)
        #expect(try JSON.parse("[-123123e100000]")[0]?.double == nil)
        #expect(try JSON.parse("[123.456e-789]")[0]?.double == 0)
        #expect(try JSON.parse("[100000000000000000000]")[0]?.int == nil)
        #expect(try JSON.parse("[100000000000000000000]")[0]?.double == 1e20)
    }

    // MARK: - Errors say where and what

    /// Rejected texts with the byte offset the error must name and a word its reason must contain.
    static let located: [(String, Int, String)] = [
        (#"{"model": +1}"#, 10, "'+'"),
        ("01", 1, "leading zero"),
        ("[.5]", 1, "before the '.'"),
        ("[1.]", 3, "after the '.'"),
        ("1e+", 3, "exponent"),
        ("[1,]", 3, "expected a value"),
        (#"{"a" 1}"#, 5, "':'"),
        (#"{"a":1,}"#, 7, "key"),
        ("[1 2]", 3, "',' or ']'"),
        ("[1]x", 3, "after the value"),
        ("", 0, "empty"),
        ("[tru]", 1, "true"),
        ("[\"a\u{1}\"]", 3, "control character"),
        (#"["\x"]"#, 2, "invalid escape"),
        (#"["\u12G4"]"#, 6, "4 hex digits"),
        (#"["ab\uD800"]"#, 4, "lone surrogate"),
        (#"["abc"#, 1, "unterminated"),
        (String(repeating: "[", count: 600), 512, "512"),
    ]

    @Test(arguments: located)
    func errorsNameTheOffsetAndTheProblem(_ text: String, _ offset: Int, _ word: String) {
        do {
            _ = try JSON.parse(text)
            Issue.record("\(text) parsed")
        } catch let error as JSONParseError {
            #expect(error.offset == offset, "\(text): \(error)")
            #expect(error.reason.contains(word), "\(text): \(error)")
            #expect(error.description == "offset \(offset): \(error.reason)")
        } catch {
            Issue.record("\(text): \(error)")
        }
    }

    @Test func invalidUTF8ErrorNamesTheBadByte() {
        let text: [UInt8] = Array(#"{"k":"ab"#.utf8) + [0xE2, 0x28, 0xA1] + Array(#""}"#.utf8)
        #expect(throws: JSONParseError.self) { try JSON.parse(Data(text)) }
        do {
            _ = try JSON.parse(Data(text))
        } catch let error as JSONParseError {
            #expect(error.offset == 9, "\(error)")
            #expect(error.reason.contains("UTF-8"))
        } catch {
            Issue.record("\(error)")
        }
    }

    /// Expects `test` to throw a `JSONParseError` pointing inside the text, whose reason mentions `reason` if given.
    func expectRejected(_ test: JSONCase, reason: String? = nil) {
        do {
            let value = try JSON.parse(test.data)
            Issue.record("\(test.name) parsed as \(value.text)")
        } catch let error as JSONParseError {
            #expect((0...test.bytes.count).contains(error.offset), "\(test.name): \(error)")
            #expect(!error.reason.isEmpty)
            if let reason { #expect(error.reason.contains(reason), "\(test.name): \(error)") }
        } catch {
            Issue.record("\(test.name) threw \(error)")
        }
    }
}
