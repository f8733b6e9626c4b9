import Foundation
import RetortData
import RetortNumerics
import RetortStudents
import RetortTestSupport
import Testing

func randomDistribution(_ rows: Int, _ columns: Int, _ generator: inout SeededGenerator) -> Matrix {
    var m = Matrix(
        rows: rows, columns: columns, storage: (0..<(rows * columns)).map { _ in generator.nextGaussian() * 2 })
    Kernels.softmaxRows(&m)
    return m
}

@Suite struct GradientTests {
    @Test(
        "distillation-loss gradient matches finite differences",
        arguments: [(Float(1), Float(1)), (2, 0.8), (4, 0.5), (2, 0)])
    func lossGradient(temperature: Float, alpha: Float) {
        var generator = SeededGenerator(seed: 21)
        let loss = DistillationLoss(temperature: temperature, alpha: alpha)
        let logits = Matrix(rows: 3, columns: 4, storage: (0..<12).map { _ in generator.nextGaussian() })
        let targets = loss.temperedTargets(randomDistribution(3, 4, &generator))
        let labels = [0, 2, 3]
        let (_, gradient) = loss.lossAndGradient(logits: logits, temperedTargets: targets, hardLabels: labels)
        let h: Float = 1e-2
        for index in 0..<12 {
            var plus = logits
            plus.storage[index] += h
            var minus = logits
            minus.storage[index] -= h
            let numeric =
                (loss.lossAndGradient(logits: plus, temperedTargets: targets, hardLabels: labels).loss
                    - loss.lossAndGradient(logits: minus, temperedTargets: targets, hardLabels: labels).loss) / (2 * h)
            #expect(
                approximatelyEqual(numeric, gradient.storage[index], within: 2e-3),
                "logit \(index): numeric \(numeric) vs \(gradient.storage[index])")
        }
    }

    @Test(
        "backpropagation matches finite differences on every layer (mlp with ReLU, embedding-bag without)",
        arguments: [(Family.mlp, false), (.mlp, true), (.embeddingBag, true)])
    func networkGradient(family: Family, sparse: Bool) throws {
        var generator = SeededGenerator(seed: 22)
        let architecture = Architecture(
            family: family, hidden: [6, 5], inputDimension: 8, outputDimension: 3, sparseInput: sparse)
        var network = DenseNetwork(architecture: architecture, generator: &generator)
        for l in network.layers.indices {
            for i in network.layers[l].bias.indices { network.layers[l].bias[i] = generator.nextGaussian() * 0.3 }
        }
        let dense = Matrix(rows: 4, columns: 8, storage: (0..<32).map { _ in generator.nextGaussian() })
        let features: FeatureMatrix
        if sparse {
            var offsets = [0]
            var columns: [Int32] = []
            var values: [Float] = []
            for i in 0..<4 {
                for j in stride(from: i % 2, to: 8, by: 2) {
                    columns.append(Int32(j))
                    values.append(dense[i, j])
                }
                offsets.append(values.count)
            }
            features = .sparse(
                SparseMatrix(rows: 4, columns: 8, rowOffsets: offsets, columnIndices: columns, values: values))
        } else {
            features = .dense(dense)
        }
        let loss = DistillationLoss(temperature: 2, alpha: 0.7)
        let targets = loss.temperedTargets(randomDistribution(4, 3, &generator))
        let labels = [0, 1, 2, 1]
        let (_, gradients) = try network.lossAndGradients(
            features, temperedTargets: targets, hardLabels: labels, loss: loss)
        func lossValue(_ candidate: DenseNetwork) throws -> Float {
            try candidate.lossAndGradients(features, temperedTargets: targets, hardLabels: labels, loss: loss).loss
        }
        let h: Float = 1e-2
        var checked = 0
        for layer in network.layers.indices {
            var analytic = Matrix(
                rows: network.layers[layer].inputDimension, columns: network.layers[layer].outputDimension)
            switch gradients[layer].weights {
            case .dense(let g): analytic = g
            case .rows(let rows, let g):
                for (position, row) in rows.enumerated() {
                    for j in 0..<analytic.columns { analytic[Int(row), j] = g[position, j] }
                }
            }
            for index in stride(from: 0, to: analytic.storage.count, by: 3) {
                var plus = network
                plus.layers[layer].weights.storage[index] += h
                var minus = network
                minus.layers[layer].weights.storage[index] -= h
                let numeric = (try lossValue(plus) - lossValue(minus)) / (2 * h)
                #expect(
                    approximatelyEqual(numeric, analytic.storage[index], within: 3e-3), "layer \(layer) weight \(index)"
                )
                checked += 1
            }
            for index in network.layers[layer].bias.indices {
                var plus = network
                plus.layers[layer].bias[index] += h
                var minus = network
                minus.layers[layer].bias[index] -= h
                let numeric = (try lossValue(plus) - lossValue(minus)) / (2 * h)
                #expect(
                    approximatelyEqual(numeric, gradients[layer].bias[index], within: 3e-3),
                    "layer \(layer) bias \(index)")
            }
        }
        #expect(checked > 20)
    }

    @Test("Adam's vectorized update equals the scalar formula, for dense and row-sparse gradients")
    func adamMatchesScalarFormula() {
        var generator = SeededGenerator(seed: 23)
        let architecture = Architecture(
            family: .mlp, hidden: [11], inputDimension: 9, outputDimension: 3, sparseInput: true)
        var network = DenseNetwork(architecture: architecture, generator: &generator)
        var reference = network
        var adam = Adam(for: network, learningRate: 0.01)
        var (m, v) = (network.layers.map { $0.weights.storage.map { _ in Float(0) } }, [[Float]]())
        v = m
        for step in 1...3 {
            let rows: [Int32] = [1, 4, 8]
            let sparseGradient = Matrix(rows: 3, columns: 11, storage: (0..<33).map { _ in generator.nextGaussian() })
            let denseGradient = Matrix(rows: 11, columns: 3, storage: (0..<33).map { _ in generator.nextGaussian() })
            adam.update(
                &network,
                with: [
                    LayerGradient(weights: .rows(rows, sparseGradient), bias: [Float](repeating: 0, count: 11)),
                    LayerGradient(weights: .dense(denseGradient), bias: [0, 0, 0]),
                ])
            let stepSize = 0.01 * (1 - powf(0.999, Float(step))).squareRoot() / (1 - powf(0.9, Float(step)))
            func scalarUpdate(layer: Int, index: Int, gradient g: Float) {
                m[layer][index] = 0.9 * m[layer][index] + 0.1 * g
                v[layer][index] = 0.999 * v[layer][index] + 0.001 * g * g
                reference.layers[layer].weights.storage[index] -=
                    stepSize * m[layer][index] / (v[layer][index].squareRoot() + 1e-8)
            }
            for (position, row) in rows.enumerated() {
                for j in 0..<11 {
                    scalarUpdate(layer: 0, index: Int(row) * 11 + j, gradient: sparseGradient[position, j])
                }
            }
            for index in 0..<33 { scalarUpdate(layer: 1, index: index, gradient: denseGradient.storage[index]) }
        }
        for layer in 0..<2 {
            for (a, b) in zip(network.layers[layer].weights.storage, reference.layers[layer].weights.storage) {
                #expect(abs(a - b) <= 1e-6 * max(1, abs(b)))
            }
        }
    }

    @Test("cross-entropy from logits equals −Σ p log softmax(z), including teacher rows without full mass")
    func crossEntropyFromLogits() {
        var generator = SeededGenerator(seed: 24)
        let logits = Matrix(rows: 5, columns: 9, storage: (0..<45).map { _ in generator.nextGaussian() * 3 })
        var teacher = randomDistribution(5, 9, &generator)
        teacher[4, 0] = 0
        var q = logits
        Kernels.softmaxRows(&q)
        let direct = TrainingSession.crossEntropy(q, against: teacher)
        #expect(
            approximatelyEqual(TrainingSession.crossEntropy(logits: logits, against: teacher), direct, within: 1e-5))
    }
}
