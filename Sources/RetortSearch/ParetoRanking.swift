/// Non-dominated sorting and crowding distance (Deb, Pratap, Agarwal & Meyarivan 2002, NSGA-II), used to choose
/// which candidates survive a rung of successive halving.
public enum ParetoRanking {
    /// The front index of every point (0 = non-dominated, 1 = non-dominated once front 0 is removed, ...).
    /// - Complexity: O(n²) comparisons.
    public static func ranks(_ points: [FrontierPoint]) -> [Int] {
        var dominatedBy = [Int](repeating: 0, count: points.count)
        var dominates = [[Int]](repeating: [], count: points.count)
        for i in points.indices {
            for j in points.indices where i != j {
                if points[i].dominates(points[j]) {
                    dominates[i].append(j)
                } else if points[j].dominates(points[i]) {
                    dominatedBy[i] += 1
                }
            }
        }
        var ranks = [Int](repeating: 0, count: points.count)
        var front = points.indices.filter { dominatedBy[$0] == 0 }
        var rank = 0
        while !front.isEmpty {
            var next: [Int] = []
            for i in front {
                ranks[i] = rank
                for j in dominates[i] {
                    dominatedBy[j] -= 1
                    if dominatedBy[j] == 0 { next.append(j) }
                }
            }
            rank += 1
            front = next
        }
        return ranks
    }

    /// Crowding distance of each point within its own front, over (quality, FLOPs, size) normalised by each
    /// front's range; the extremes of every objective get infinity.
    public static func crowdingDistances(_ points: [FrontierPoint], ranks: [Int]) -> [Double] {
        var distances = [Double](repeating: 0, count: points.count)
        let objectives: [(FrontierPoint) -> Double] = [{ $0.quality }, { $0.flops }, { $0.size }]
        for rank in Set(ranks) {
            let members = points.indices.filter { ranks[$0] == rank }
            guard members.count > 2 else {
                for i in members { distances[i] = .infinity }
                continue
            }
            for objective in objectives {
                let sorted = members.sorted {
                    objective(points[$0]) < objective(points[$1])
                        || (objective(points[$0]) == objective(points[$1]) && points[$0].id < points[$1].id)
                }
                guard let first = sorted.first, let last = sorted.last else { continue }
                let range = objective(points[last]) - objective(points[first])
                distances[first] = .infinity
                distances[last] = .infinity
                guard range > 0, range.isFinite else { continue }
                for position in 1..<(sorted.count - 1) {
                    let gap = objective(points[sorted[position + 1]]) - objective(points[sorted[position - 1]])
                    distances[sorted[position]] += gap / range
                }
            }
        }
        return distances
    }

    /// The `count` best points by (rank ↑, crowding distance ↓, id): the survivors of a halving rung.
    public static func best(_ count: Int, of points: [FrontierPoint]) -> [FrontierPoint] {
        let ranks = ranks(points)
        let distances = crowdingDistances(points, ranks: ranks)
        let order = points.indices.sorted { a, b in
            if ranks[a] != ranks[b] { return ranks[a] < ranks[b] }
            if distances[a] != distances[b] { return distances[a] > distances[b] }
            return points[a].id < points[b].id
        }
        return order.prefix(count).map { points[$0] }
    }
}
