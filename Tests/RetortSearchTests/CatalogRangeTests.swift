import RetortData
import RetortSearch
import Testing

/// Catalog numbers are range-checked at the element that is wrong, and an entry cannot expand past 100,000 candidates.
@Suite struct CatalogRangeTests {
    @Test(
        "a value outside its range names the key, its line, the range and the value",
        arguments: [
            (
                "numeric:\n  - family: mlp\n    hidden: [[8]]\n    epochs: [10,\n      99999999999]\n", 5,
                "epochs must be a whole number in [1, 10000], got 99999999999"
            ),
            (
                "numeric:\n  - family: mlp\n    hidden: [[8, 2000000]]\n", 3,
                "hidden must be a whole number in [1, 16384], got 2000000"
            ),
            ("numeric:\n  - family: linear\n    lr: 1e300\n", 3, "lr must be in [1e-06, 10], got 1e300"),
            (
                "numeric:\n  - family: gbdt\n    depth: 99999999999999999999\n", 3,
                "depth must be a whole number in [1, 10]"
            ),
        ])
    func outOfRange(yaml: String, line: Int, message: String) {
        let error = #expect(throws: DataError.self) { try CandidateCatalog(try YAMLValue.parse(yaml, file: "c.yaml")) }
        #expect(error?.line == line, "\(String(describing: error))")
        #expect(error?.message.contains(message) == true, "\(String(describing: error))")
    }

    @Test("an entry whose lists multiply past 100,000 candidates is refused before it is expanded")
    func hugeGrid() {
        let values = (1...100).map(String.init).joined(separator: ", ")
        let yaml =
            "numeric:\n  - family: mlp\n    hidden: [[8]]\n    epochs: [\(values)]\n    batch_size: [\(values)]\n"
            + "    patience: [\(values)]\n"
        let error = #expect(throws: DataError.self) { try CandidateCatalog(try YAMLValue.parse(yaml, file: "c.yaml")) }
        #expect(error?.message.contains("expands to 1000000 candidates") == true, "\(String(describing: error))")
        #expect(error?.line == 2)
    }
}
