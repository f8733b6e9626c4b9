import Foundation
import RetortNumerics
import RetortTestSupport
import Testing

func randomMatrix(_ rows: Int, _ columns: Int, _ generator: inout SeededGenerator) -> Matrix {
    Matrix(rows: rows, columns: columns, storage: (0..<(rows * columns)).map { _ in generator.nextGaussian() })
}

func naiveProduct(_ a: Matrix, _ b: Matrix, transposeA: Bool, transposeB: Bool) -> Matrix {
    let m = transposeA ? a.columns : a.rows
    let k = transposeA ? a.rows : a.columns
    let n = transposeB ? b.rows : b.columns
    var c = Matrix(rows: m, columns: n)
    for i in 0..<m {
        for j in 0..<n {
            var total: Double = 0
            for p in 0..<k {
                let x = transposeA ? a[p, i] : a[i, p]
                let y = transposeB ? b[j, p] : b[p, j]
                total += Double(x) * Double(y)
            }
            c[i, j] = Float(total)
        }
    }
    return c
}

@Suite struct BLASTests {
    @Test(
        "sgemm matches a naive product for every transpose combination",
        arguments: [(false, false), (true, false), (false, true), (true, true)])
    func gemmMatchesNaive(transposeA: Bool, transposeB: Bool) throws {
        var generator = SeededGenerator(seed: 11)
        let (m, k, n) = (7, 13, 5)
        let a = transposeA ? randomMatrix(k, m, &generator) : randomMatrix(m, k, &generator)
        let b = transposeB ? randomMatrix(n, k, &generator) : randomMatrix(k, n, &generator)
        let product = try Matrix.product(
            a, b, transposeA: transposeA ? .transposed : .none, transposeB: transposeB ? .transposed : .none)
        let expected = naiveProduct(a, b, transposeA: transposeA, transposeB: transposeB)
        #expect(product.rows == m && product.columns == n)
        for (x, y) in zip(product.storage, expected.storage) {
            #expect(approximatelyEqual(x, y, relative: 1e-4, absolute: 1e-4))
        }
    }

    @Test("multiply accumulates with alpha and beta")
    func gemmAlphaBeta() throws {
        var generator = SeededGenerator(seed: 12)
        let a = randomMatrix(4, 3, &generator)
        let b = randomMatrix(3, 2, &generator)
        var c = randomMatrix(4, 2, &generator)
        let original = c
        try Matrix.multiply(a, b, alpha: 2, beta: 0.5, into: &c)
        let ab = naiveProduct(a, b, transposeA: false, transposeB: false)
        for i in c.storage.indices {
            #expect(approximatelyEqual(c.storage[i], 2 * ab.storage[i] + 0.5 * original.storage[i], absolute: 1e-4))
        }
    }

    @Test("mismatched shapes throw instead of trapping")
    func shapeMismatch() {
        let a = Matrix(rows: 2, columns: 3)
        let b = Matrix(rows: 4, columns: 2)
        #expect(throws: NumericsError.self) { try Matrix.product(a, b) }
    }

    @Test("dimensions beyond 32 bits throw a NumericsError")
    func dimensionTooLarge() {
        var storage: [Float] = [0]
        _ = storage.withUnsafeMutableBufferPointer { buffer in
            #expect(throws: NumericsError.self) {
                try BLAS.gemm(
                    .none, .none, m: Int(Int32.max) + 1, n: 1, k: 1, a: UnsafeBufferPointer(buffer), lda: 1,
                    b: UnsafeBufferPointer(buffer), ldb: 1, c: buffer, ldc: 1)
            }
        }
    }

    @Test("column sums and bias rows go through BLAS correctly")
    func columnSumsAndBias() throws {
        var generator = SeededGenerator(seed: 13)
        var m = randomMatrix(5, 3, &generator)
        let sums = try Kernels.columnSums(m)
        for j in 0..<3 {
            let expected = (0..<5).reduce(Float(0)) { $0 + m[$1, j] }
            #expect(approximatelyEqual(sums[j], expected, absolute: 1e-5))
        }
        let before = m
        try Kernels.addRowVector([1, 2, 3], to: &m)
        for i in 0..<5 {
            for j in 0..<3 { #expect(approximatelyEqual(m[i, j], before[i, j] + Float(j + 1), absolute: 1e-5)) }
        }
    }

    @Test("the CSR kernels equal dense products")
    func sparseKernels() throws {
        var generator = SeededGenerator(seed: 14)
        var offsets = [0]
        var columns: [Int32] = []
        var values: [Float] = []
        for _ in 0..<6 {
            let picks = Set((0..<3).map { _ in Int32(generator.next() % 20) }).sorted()
            columns += picks
            values += picks.map { _ in generator.nextGaussian() }
            offsets.append(values.count)
        }
        let sparse = SparseMatrix(rows: 6, columns: 20, rowOffsets: offsets, columnIndices: columns, values: values)
        let dense = sparse.densified()
        let weights = randomMatrix(20, 4, &generator)
        let product = try sparse.multiplied(by: weights)
        let expected = naiveProduct(dense, weights, transposeA: false, transposeB: false)
        for (x, y) in zip(product.storage, expected.storage) { #expect(approximatelyEqual(x, y, absolute: 1e-4)) }
        let upstream = randomMatrix(6, 4, &generator)
        let (touched, rows) = try sparse.transposeMultipliedTouched(by: upstream)
        let full = naiveProduct(dense, upstream, transposeA: true, transposeB: false)
        #expect(touched == Array(Set(columns)).sorted())
        for (position, column) in touched.enumerated() {
            for j in 0..<4 { #expect(approximatelyEqual(rows[position, j], full[Int(column), j], absolute: 1e-4)) }
        }
        let untouched = Set(0..<20).subtracting(touched.map(Int.init))
        for column in untouched { for j in 0..<4 { #expect(full[column, j] == 0) } }
    }

    @Test("vectorized ReLU, its derivative and row gathering equal scalar definitions on ragged lengths")
    func elementwiseKernels() {
        var generator = SeededGenerator(seed: 5)
        for columns in [1, 7, 8, 13, 33] {
            let x = randomMatrix(3, columns, &generator)
            var relu = x
            Kernels.relu(&relu)
            #expect(relu.storage == x.storage.map { max($0, 0) })
            let upstream = randomMatrix(3, columns, &generator)
            var gradient = upstream
            Kernels.reluBackward(&gradient, activation: x)
            #expect(gradient.storage == zip(upstream.storage, x.storage).map { $1 > 0 ? $0 : 0 })
            let gathered = x.gatheringRows([2, 0, 2])
            #expect(gathered.storage == x.row(2) + x.row(0) + x.row(2))
        }
    }

    @Test("the vectorized exp matches expf to 1e-6 relative, is 0 far below and NaN on NaN")
    func vectorizedExp() {
        var worst: Float = 0
        for step in 0..<20_000 {
            let x = -87 + Float(step) * (175 / 20_000)
            let lanes = Kernels.exp(SIMD8(repeating: x))
            let expected = expf(x)
            worst = max(worst, abs(lanes[0] - expected) / expected)
        }
        #expect(worst < 1e-6, "worst relative error \(worst)")
        let edges = Kernels.exp(SIMD8(-1000, -88, .nan, 0, 1, -.infinity, 0.5, -0.5))
        #expect(edges[0] == 0 && edges[1] == 0 && edges[2].isNaN && edges[3] == 1 && edges[5] == 0)
        var values: [Float] = (0..<13).map { Float($0) - 6 }
        values.withUnsafeMutableBufferPointer { Kernels.exponentiate($0) }
        for (index, value) in values.enumerated() {
            #expect(abs(value - expf(Float(index) - 6)) <= 1e-6 * value)
        }
    }

    @Test("fused bias (+ ReLU), log-sum-exp and the squared-softmax identity equal their definitions")
    func fusedRowKernels() {
        var generator = SeededGenerator(seed: 6)
        for columns in [1, 4, 7, 26] {
            let x = randomMatrix(3, columns, &generator)
            let bias = (0..<columns).map { _ in generator.nextGaussian() }
            for relu in [false, true] {
                var fused = x
                Kernels.addBias(bias, to: &fused, relu: relu)
                for i in 0..<3 {
                    for j in 0..<columns {
                        let expected = x[i, j] + bias[j]
                        #expect(fused[i, j] == (relu ? max(expected, 0) : expected))
                    }
                }
            }
            let row = x.row(1)
            let lse = row.withUnsafeBufferPointer { Kernels.logSumExp($0) }
            let reference = Float(log(row.map { Foundation.exp(Double($0)) }.reduce(0, +)))
            #expect(approximatelyEqual(lse, reference, within: 1e-5))
            var hard = x
            Kernels.softmaxRows(&hard)
            var fromHalf = x
            Kernels.softmaxRows(&fromHalf, temperature: 2)
            Kernels.squareAndNormalizeRows(&fromHalf)
            for (a, b) in zip(hard.storage, fromHalf.storage) { #expect(approximatelyEqual(a, b, within: 1e-6)) }
        }
    }

    @Test("softmax rows sum to one and survive huge logits")
    func softmax() {
        var m = Matrix(rows: 2, columns: 3, storage: [1000, 1001, 999, -5, 0, 5])
        Kernels.softmaxRows(&m)
        for i in 0..<2 {
            let total = (0..<3).reduce(Float(0)) { $0 + m[i, $1] }
            #expect(approximatelyEqual(total, 1, absolute: 1e-5))
            #expect((0..<3).allSatisfy { m[i, $0].isFinite })
        }
        #expect(m[0, 1] > m[0, 0] && m[0, 0] > m[0, 2])
        #expect(approximatelyEqual(Kernels.logSumExp([1000, 1000]), 1000 + log(2), absolute: 1e-3))
    }

    @Test("LAPACK symmetric eigen-decomposition satisfies A·v = λ·v")
    func eigen() throws {
        var generator = SeededGenerator(seed: 15)
        let b = randomMatrix(4, 4, &generator)
        let a = try Matrix.product(b, b, transposeB: .transposed)
        let (values, vectors) = try LAPACK.symmetricEigen(a)
        #expect(values == values.sorted())
        for k in 0..<4 {
            let v = (0..<4).map { vectors[$0, k] }
            for i in 0..<4 {
                let av = (0..<4).reduce(Float(0)) { $0 + a[i, $1] * v[$1] }
                #expect(approximatelyEqual(av, values[k] * v[i], relative: 1e-3, absolute: 1e-3))
            }
        }
        #expect(throws: NumericsError.self) { try LAPACK.symmetricEigen(Matrix(rows: 2, columns: 3)) }
    }

    @Test("the seeded generator repeats its stream for a seed and differs across seeds")
    func generator() {
        var a = SeededGenerator(seed: 5)
        var b = SeededGenerator(seed: 5)
        var c = SeededGenerator(seed: 6)
        let xs = (0..<10).map { _ in a.next() }
        #expect(xs == (0..<10).map { _ in b.next() })
        #expect(xs != (0..<10).map { _ in c.next() })
        var g = SeededGenerator(seed: 7)
        let samples = (0..<20_000).map { _ in Double(g.nextGaussian()) }
        let mean = samples.reduce(0, +) / Double(samples.count)
        let variance = samples.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(samples.count)
        #expect(abs(mean) < 0.03)
        #expect(approximatelyEqual(variance, 1, within: 0.05))
    }
}
