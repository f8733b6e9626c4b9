import Foundation

/// The ledger's tables, for each backend. SQLite grows them in place (`CREATE … IF NOT EXISTS` and column checks) and
/// keeps its version in `PRAGMA user_version`; PostgreSQL keeps a version in `retort_schema` and applies the numbered migrations after it, in one
/// transaction under an advisory lock, so gateway replicas that start together never race.
enum LedgerSchema {
    /// The SQLite tables.
    static let sqlite = """
        CREATE TABLE IF NOT EXISTS requests (
            id INTEGER PRIMARY KEY, time REAL NOT NULL, key_hash TEXT NOT NULL, user TEXT NOT NULL,
            team TEXT NOT NULL, route TEXT NOT NULL, deployment TEXT, served_model TEXT, session TEXT NOT NULL,
            input_tokens INTEGER NOT NULL, cached_input_tokens INTEGER NOT NULL,
            cache_write_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
            reasoning_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, latency_ms REAL NOT NULL,
            ttft_ms REAL, status INTEGER NOT NULL, error_code TEXT, attempts INTEGER NOT NULL,
            failover INTEGER NOT NULL, stream INTEGER NOT NULL, kind TEXT NOT NULL DEFAULT 'client');
        CREATE INDEX IF NOT EXISTS requests_time ON requests(time);
        CREATE TABLE IF NOT EXISTS trips (
            id INTEGER PRIMARY KEY, time REAL NOT NULL, session TEXT NOT NULL, user TEXT NOT NULL,
            reason TEXT NOT NULL, duration_s REAL NOT NULL, tokens INTEGER NOT NULL, spend_usd REAL NOT NULL);
        CREATE TABLE IF NOT EXISTS confirmations (
            id INTEGER PRIMARY KEY, time REAL NOT NULL, session TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS captures (
            id INTEGER PRIMARY KEY, time REAL NOT NULL, task TEXT NOT NULL, route TEXT NOT NULL,
            input TEXT NOT NULL, answer TEXT NOT NULL, top_logprobs TEXT, input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, latency_ms REAL NOT NULL,
            model TEXT NOT NULL, deployment TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS captures_task ON captures(task);
        CREATE TABLE IF NOT EXISTS failovers (
            id INTEGER PRIMARY KEY, time REAL NOT NULL, route TEXT NOT NULL, deployment TEXT NOT NULL,
            reason TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS deployments (
            id INTEGER PRIMARY KEY, time REAL NOT NULL, route TEXT NOT NULL, candidate TEXT NOT NULL,
            kind TEXT NOT NULL, run_dir TEXT NOT NULL, model_dir TEXT NOT NULL, task TEXT NOT NULL,
            threshold REAL NOT NULL, shadow REAL NOT NULL, min_agreement REAL NOT NULL,
            usd_per_vcpu_second REAL NOT NULL, validation_agreement TEXT, state TEXT NOT NULL,
            ended_at REAL, reason TEXT);
        CREATE INDEX IF NOT EXISTS deployments_route ON deployments(route);
        CREATE TABLE IF NOT EXISTS shadows (
            id INTEGER PRIMARY KEY, time REAL NOT NULL, deployment_id INTEGER NOT NULL, route TEXT NOT NULL,
            input TEXT NOT NULL, student_label TEXT NOT NULL, teacher_answer TEXT NOT NULL,
            teacher_label TEXT, agree INTEGER NOT NULL, cost_usd REAL NOT NULL, latency_ms REAL NOT NULL);
        CREATE INDEX IF NOT EXISTS shadows_deployment ON shadows(deployment_id);
        """

    /// The budget counters: settled spend and tokens per budget scope (`key HASH`, `user NAME`, `team NAME`) and
    /// period (`day N`, days since 1970; `month N`, months since year 0), so admission reads two rows per scope instead
    /// of summing a month of requests. PostgreSQL keeps them in step with `requests` in the statement that inserts the
    /// rows; SQLite folds the rows in behind the inserts (`Ledger.foldCounters`).
    static let countersTable = """
        CREATE TABLE IF NOT EXISTS budget_counters (
            scope TEXT NOT NULL, period TEXT NOT NULL, usd DOUBLE PRECISION NOT NULL,
            tokens DOUBLE PRECISION NOT NULL, PRIMARY KEY (scope, period))
        """

    /// The SQLite ledger's small settings, by key: `counters_through`, the watermark of `budget_counters` (see
    /// `Ledger.foldCounters`).
    static let metaTable = "CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)"

    /// The SQLite schema version (`PRAGMA user_version`) this build writes: 1 added `budget_counters`; 2 made them a
    /// cache of the rows up to a watermark in `ledger_meta`, folded in behind the inserts instead of by them.
    static let sqliteVersion = 2

    /// Brings an SQLite ledger to `sqliteVersion` and folds its unfolded rows into the counters: ledgers written
    /// before deployments existed have no `kind` column; ledgers before version 1 have no budget counters (created and
    /// backfilled from `requests`); before version 2 the counters held every row, so the watermark starts at the newest.
    /// All in one immediate transaction, so two processes opening an old ledger together migrate it once and no row is
    /// folded twice.
    static func upgradeSQLite(_ database: SQLiteLedgerDatabase) throws {
        let columns = try database.query("SELECT name FROM pragma_table_info('requests')", []).map {
            $0.string("name")
        }
        if !columns.contains("kind") {
            try database.execute("ALTER TABLE requests ADD COLUMN kind TEXT NOT NULL DEFAULT 'client'", [])
        }
        try database.immediateTransaction { statements in
            let version = try statements.query("PRAGMA user_version", []).first?.int("user_version") ?? 0
            if version > sqliteVersion {
                throw LedgerSchemaError(
                    message:
                        "the ledger's schema is version \(version), newer than this retort knows (\(sqliteVersion)); upgrade retort"
                )
            }
            if version < 1 {
                try statements.execute(countersTable, [])
                try backfillCounters(statements, day: "CAST(time / 86400 AS INTEGER)")
            }
            if version < 2 {
                try statements.execute(metaTable, [])
                try statements.execute(
                    "INSERT OR REPLACE INTO ledger_meta (key, value) SELECT ?, COALESCE(MAX(id), 0) FROM requests",
                    [.text(Ledger.foldedThroughKey)])
            }
            if version < sqliteVersion { try statements.execute("PRAGMA user_version = \(sqliteVersion)", []) }
            try Ledger.foldCounters(statements)
        }
    }

    /// Rebuilds `budget_counters` from `requests` (the migration to counters); `day` is the backend's SQL for a
    /// row's day number.
    static func backfillCounters(_ statements: any LedgerStatements, day: String) throws {
        try statements.execute("DELETE FROM budget_counters", [])
        var counters = BudgetCounters()
        for (prefix, column) in [("key ", "key_hash"), ("user ", "\"user\""), ("team ", "team")] {
            let rows = try statements.query(
                """
                SELECT \(column) AS name, \(day) AS day, CAST(SUM(cost_usd) AS DOUBLE PRECISION) AS usd,
                    CAST(SUM(\(BudgetCounters.tokenSum)) AS DOUBLE PRECISION) AS tokens
                FROM requests GROUP BY 1, 2
                """, [])
            for row in rows {
                counters.add(
                    scope: prefix + row.string("name"), day: row.int("day"), usd: row.double("usd"),
                    tokens: row.double("tokens"))
            }
        }
        try counters.write(statements)
    }

    /// PostgreSQL migrations: index i takes the schema from version i to i + 1. Append only; never edit one that
    /// shipped.
    static let postgres: [[String]] = [
        [
            """
            CREATE TABLE requests (
                id BIGSERIAL PRIMARY KEY, time DOUBLE PRECISION NOT NULL, key_hash TEXT NOT NULL, "user" TEXT NOT NULL,
                team TEXT NOT NULL, route TEXT NOT NULL, deployment TEXT, served_model TEXT, session TEXT NOT NULL,
                input_tokens BIGINT NOT NULL, cached_input_tokens BIGINT NOT NULL, cache_write_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL, cost_usd DOUBLE PRECISION NOT NULL,
                latency_ms DOUBLE PRECISION NOT NULL, ttft_ms DOUBLE PRECISION, status BIGINT NOT NULL,
                error_code TEXT, attempts BIGINT NOT NULL, failover BIGINT NOT NULL, stream BIGINT NOT NULL,
                kind TEXT NOT NULL DEFAULT 'client')
            """,
            "CREATE INDEX requests_time ON requests(time)",
            "CREATE INDEX requests_key_time ON requests(key_hash, time)",
            "CREATE INDEX requests_user_time ON requests(\"user\", time)",
            "CREATE INDEX requests_team_time ON requests(team, time)",
            "CREATE INDEX requests_session ON requests(session)",
            """
            CREATE TABLE trips (
                id BIGSERIAL PRIMARY KEY, time DOUBLE PRECISION NOT NULL, session TEXT NOT NULL, "user" TEXT NOT NULL,
                reason TEXT NOT NULL, duration_s DOUBLE PRECISION NOT NULL, tokens BIGINT NOT NULL,
                spend_usd DOUBLE PRECISION NOT NULL)
            """,
            "CREATE INDEX trips_session ON trips(session)",
            """
            CREATE TABLE confirmations (
                id BIGSERIAL PRIMARY KEY, time DOUBLE PRECISION NOT NULL, session TEXT NOT NULL)
            """,
            "CREATE INDEX confirmations_session ON confirmations(session)",
            """
            CREATE TABLE captures (
                id BIGSERIAL PRIMARY KEY, time DOUBLE PRECISION NOT NULL, task TEXT NOT NULL, route TEXT NOT NULL,
                input TEXT NOT NULL, answer TEXT NOT NULL, top_logprobs TEXT, input_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL, cost_usd DOUBLE PRECISION NOT NULL, latency_ms DOUBLE PRECISION NOT NULL,
                model TEXT NOT NULL, deployment TEXT NOT NULL)
            """,
            "CREATE INDEX captures_task ON captures(task)",
            """
            CREATE TABLE failovers (
                id BIGSERIAL PRIMARY KEY, time DOUBLE PRECISION NOT NULL, route TEXT NOT NULL, deployment TEXT NOT NULL,
                reason TEXT NOT NULL)
            """,
            """
            CREATE TABLE deployments (
                id BIGSERIAL PRIMARY KEY, time DOUBLE PRECISION NOT NULL, route TEXT NOT NULL, candidate TEXT NOT NULL,
                kind TEXT NOT NULL, run_dir TEXT NOT NULL, model_dir TEXT NOT NULL, task TEXT NOT NULL,
                threshold DOUBLE PRECISION NOT NULL, shadow DOUBLE PRECISION NOT NULL,
                min_agreement DOUBLE PRECISION NOT NULL, usd_per_vcpu_second DOUBLE PRECISION NOT NULL,
                validation_agreement TEXT, state TEXT NOT NULL, ended_at DOUBLE PRECISION, reason TEXT)
            """,
            "CREATE INDEX deployments_route ON deployments(route)",
            """
            CREATE TABLE shadows (
                id BIGSERIAL PRIMARY KEY, time DOUBLE PRECISION NOT NULL, deployment_id BIGINT NOT NULL,
                route TEXT NOT NULL, input TEXT NOT NULL, student_label TEXT NOT NULL, teacher_answer TEXT NOT NULL,
                teacher_label TEXT, agree BIGINT NOT NULL, cost_usd DOUBLE PRECISION NOT NULL,
                latency_ms DOUBLE PRECISION NOT NULL)
            """,
            "CREATE INDEX shadows_deployment ON shadows(deployment_id)",
            """
            CREATE TABLE reservations (
                id BIGSERIAL PRIMARY KEY, time DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION NOT NULL,
                key_hash TEXT NOT NULL, "user" TEXT NOT NULL, team TEXT NOT NULL, usd DOUBLE PRECISION NOT NULL,
                tokens DOUBLE PRECISION NOT NULL, holder TEXT NOT NULL)
            """,
            "CREATE INDEX reservations_expiry ON reservations(expires_at)",
            "CREATE TABLE probe (x BIGINT)",
            """
            CREATE TABLE answers (key TEXT PRIMARY KEY, model TEXT NOT NULL, body TEXT NOT NULL,
                cost_usd DOUBLE PRECISION NOT NULL, tokens BIGINT NOT NULL, latency_ms DOUBLE PRECISION NOT NULL,
                time DOUBLE PRECISION NOT NULL)
            """,
            """
            CREATE TABLE batches (id TEXT PRIMARY KEY, digest TEXT NOT NULL, deployment TEXT NOT NULL,
                done BIGINT NOT NULL, time DOUBLE PRECISION NOT NULL)
            """,
        ],
        // Version 2: budget counters (backfilled from `requests` by `migratePostgres`), and reservations found by
        // scope without a scan.
        [
            countersTable,
            "CREATE INDEX reservations_key ON reservations(key_hash)",
            "CREATE INDEX reservations_user ON reservations(\"user\")",
            "CREATE INDEX reservations_team ON reservations(team)",
        ],
    ]

    /// The PostgreSQL version that added `budget_counters`.
    static let postgresCountersVersion = 2

    /// The advisory lock key migrations run under (`retort` in ASCII).
    static let migrationLock = 0x7265_746f_7274

    /// Brings a PostgreSQL ledger to the newest version; a no-op when it is there. Returns the version.
    @discardableResult
    static func migratePostgres(_ database: any LedgerDatabase) throws -> Int {
        try database.transaction { statements in
            try statements.execute("SELECT pg_advisory_xact_lock(?)", [.integer(migrationLock)])
            try statements.execute("CREATE TABLE IF NOT EXISTS retort_schema (version BIGINT NOT NULL)", [])
            let current = try statements.query("SELECT MAX(version) AS version FROM retort_schema", []).first?
                .optionalInt("version")
            let start = current ?? 0
            if start > postgres.count {
                throw LedgerSchemaError(
                    message:
                        "the ledger's schema is version \(start), newer than this retort knows (\(postgres.count)); upgrade retort"
                )
            }
            for migration in postgres[start...] {
                for statement in migration { try statements.execute(statement, []) }
            }
            if start < postgresCountersVersion {
                try backfillCounters(statements, day: "CAST(FLOOR(time / 86400) AS BIGINT)")
            }
            if current == nil {
                try statements.execute("INSERT INTO retort_schema (version) VALUES (?)", [.integer(postgres.count)])
            } else {
                try statements.execute("UPDATE retort_schema SET version = ?", [.integer(postgres.count)])
            }
            return postgres.count
        }
    }
}

/// A ledger whose schema this build cannot use.
struct LedgerSchemaError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
