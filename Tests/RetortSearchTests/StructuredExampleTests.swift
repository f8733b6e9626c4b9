import Foundation
import RetortData
import RetortExamples
import RetortStudents
import RetortTestSupport
import Testing

/// The bundled example's structured twin (`retort demo --structured`) on a small grammar the test writes.
@Suite struct StructuredExampleTests {
    static let templates = """
        slots:
          product: [rain jacket, yoga mat, desk lamp, coffee grinder, hiking boots, phone case]
          order_number: ["#48213", "#50977", "#31406", "#77120"]
          city: [Lisbon, Oslo, Denver, Kyoto]
        openers: [hi, hello there]
        closers: [thanks, cheers]
        intents:
          order_status:
            - "where is my {product}[ i ordered last week]?"
            - "what's the status of order {order_number}"
            - "when will order {order_number} be (delivered|shipped)[ to {city}]?"
          return_item:
            - "i want to return the {product}"
            - "how do i send back my {product} from order {order_number}"
          change_address:
            - "please ship order {order_number} to {city} instead"
            - "change the delivery city to {city}"
        """

    @Test("rows answered with the intent and every slot the message names; the teacher learns them; the task loads")
    func buildsATask() throws {
        let folder = SyntheticTasks.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let templates = folder.appendingPathComponent("templates.yaml")
        try Data(Self.templates.utf8).write(to: templates)
        var sizes = ShopSupportExample.Sizes()
        (sizes.train, sizes.validation, sizes.test) = (400, 120, 120)
        let summary = try ShopSupportStructuredExample.build(
            templates: templates, folder: folder.appendingPathComponent("task"), sizes: sizes, seed: 3)
        #expect(summary.keys == ["intent", "city", "order_number", "product"])
        #expect(summary.teacherTestExactMatch > 0.8, "the teacher learns the gold objects")
        let task = try StructuredTaskData.load(folder: folder.appendingPathComponent("task"))
        #expect(task.train.count == 400 && task.test.count == 120)
        #expect(task.schemaIsGiven)
        for (text, gold) in zip(task.train.texts, task.train.gold) {
            let answer = try #require(gold)
            #expect(task.schema.isValid(answer))
            for (key, value) in answer.fields where key != "intent" {
                guard case .string(let copied) = value else { continue }
                #expect(text.contains(copied), "\(key)=\(copied) is in \"\(text)\"")
            }
        }
        let slotted = task.train.gold.compactMap { $0 }.filter { $0.fields.count > 1 }.count
        #expect(slotted > 200, "most messages name a slot: \(slotted)")
    }
}
