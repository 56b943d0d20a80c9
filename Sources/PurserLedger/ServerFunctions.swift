/// On PostgreSQL, reserve and settle also exist as functions in the database, so that
/// each is one round trip, in one implicit transaction, holding the team's row lock only
/// while the server runs it. They follow `SQLBudgetStore.reserve` and `SQLBudgetStore.settle`
/// rule for rule, with the same messages; the conformance suite runs every case through
/// them on PostgreSQL and through the Swift path on SQLite. Errors carry SQLSTATEs of
/// class PU (see `LedgerError.Code.init(sqlState:)`).
enum ServerFunctions {
    static let reserveCall = """
        SELECT \(Schema.nodeColumns) FROM purser_reserve(
            CAST($1 AS BIGINT), CAST($2 AS TEXT), CAST($3 AS TEXT), CAST($4 AS TEXT), CAST($5 AS BIGINT),
            CAST($6 AS BIGINT), CAST($7 AS BIGINT), CAST($8 AS TEXT), CAST($9 AS BIGINT), CAST($10 AS TEXT),
            CAST($11 AS BIGINT), CAST($12 AS TEXT), CAST($13 AS BIGINT), CAST($14 AS BIGINT))
        """

    static let settleCall = """
        SELECT s_used_credits, s_used_time, s_peak, s_ret_credits, s_ret_time, s_ret_memory, s_outcome
        FROM purser_settle(CAST($1 AS BIGINT), CAST($2 AS BIGINT), CAST($3 AS BIGINT), CAST($4 AS BIGINT),
            CAST($5 AS TEXT), CAST($6 AS TEXT), CAST($7 AS BIGINT), CAST($8 AS BIGINT))
        """

    static let statements = [
        """
        CREATE OR REPLACE FUNCTION purser_reserve(
            p_parent BIGINT, p_kind TEXT, p_name TEXT, p_tools TEXT, p_credits BIGINT, p_time BIGINT, p_memory BIGINT,
            p_holder TEXT, p_epoch BIGINT, p_plugin TEXT, p_estimate BIGINT, p_strategy TEXT, p_now BIGINT,
            p_seats BIGINT)
        RETURNS SETOF nodes LANGUAGE plpgsql AS $fn$
        #variable_conflict use_column
        DECLARE
            parent nodes;
            child nodes;
            missing TEXT;
            short TEXT[] := '{}';
            seated BOOLEAN;
            seats BIGINT;
        BEGIN
            SELECT * INTO parent FROM nodes WHERE id = p_parent;
            IF NOT FOUND THEN RAISE EXCEPTION 'no node %', p_parent USING ERRCODE = 'PU002'; END IF;
            IF parent.state <> 'open' THEN RAISE EXCEPTION 'node % is closed', p_parent USING ERRCODE = 'PU003'; END IF;
            SELECT format('%s: team %s is frozen (by %s: %s); nothing was reserved', p_name, parent.team, by_whom, reason)
                INTO missing FROM frozen_teams WHERE team = parent.team;
            IF FOUND THEN RAISE EXCEPTION '%', missing USING ERRCODE = 'PU007'; END IF;
            IF p_holder IS NOT NULL THEN
                PERFORM 1 FROM leases WHERE holder = p_holder AND epoch = p_epoch AND state = 'live' FOR KEY SHARE;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'lease % epoch % is no longer live', p_holder, p_epoch USING ERRCODE = 'PU005';
                END IF;
            END IF;
            IF p_tools <> '' AND NOT ('*' = ANY (string_to_array(parent.tools, ','))) THEN
                SELECT string_agg(t, ', ' ORDER BY t) INTO missing FROM unnest(string_to_array(p_tools, ',')) AS t
                WHERE NOT (t = ANY (string_to_array(parent.tools, ',')));
                IF missing IS NOT NULL THEN
                    RAISE EXCEPTION '%: % not among % %''s tools', p_name, missing, parent.kind, parent.name
                        USING ERRCODE = 'PU004';
                END IF;
            END IF;
            -- A run under a hold with seats sits in one of them; any other run takes one at the team.
            seated := p_kind IN ('routine', 'step') AND parent.kind <> 'team' AND parent.workers_cap IS NOT NULL;
            seats := COALESCE(p_seats, CASE WHEN p_kind IN ('routine', 'step') AND NOT seated THEN 1 ELSE 0 END);
            UPDATE nodes SET
                avail_credits = avail_credits - p_credits, resv_credits = resv_credits + p_credits,
                avail_time = avail_time - p_time, resv_time = resv_time + p_time,
                avail_memory = avail_memory - p_memory, resv_memory = resv_memory + p_memory,
                workers_in_use = workers_in_use + CASE WHEN seated THEN 1 ELSE 0 END
            WHERE id = p_parent AND state = 'open'
                AND avail_credits >= p_credits AND avail_time >= p_time AND avail_memory >= p_memory
                AND (NOT seated OR workers_in_use < workers_cap);
            IF NOT FOUND THEN
                SELECT * INTO parent FROM nodes WHERE id = p_parent;
                IF seated AND parent.workers_in_use >= parent.workers_cap THEN
                    RAISE EXCEPTION '%: % % has no free worker seat', p_name, parent.kind, parent.name USING ERRCODE = 'PU001';
                END IF;
                IF p_credits > parent.avail_credits THEN
                    short := short || format('credits: asked %s µcredits, %s available', p_credits, parent.avail_credits);
                END IF;
                IF p_time > parent.avail_time THEN
                    short := short || format('time: asked %s ms, %s available', p_time, parent.avail_time);
                END IF;
                IF p_memory > parent.avail_memory THEN
                    short := short || format('memory: asked %s bytes, %s available', p_memory, parent.avail_memory);
                END IF;
                RAISE EXCEPTION '%: % % cannot grant it (%); nothing was reserved',
                    p_name, parent.kind, parent.name, array_to_string(short, '; ') USING ERRCODE = 'PU001';
            END IF;
            IF seats > 0 THEN
                UPDATE nodes SET workers_in_use = workers_in_use + seats
                WHERE kind = 'team' AND name = parent.team AND (workers_cap IS NULL OR workers_in_use + seats <= workers_cap);
                IF NOT FOUND THEN
                    IF seats = 1 THEN
                        RAISE EXCEPTION '%: team % has no free worker slot', p_name, parent.team USING ERRCODE = 'PU001';
                    END IF;
                    RAISE EXCEPTION '%: team % has % free worker slots, % asked', p_name, parent.team,
                        (SELECT workers_cap - workers_in_use FROM nodes WHERE kind = 'team' AND name = parent.team), seats
                        USING ERRCODE = 'PU001';
                END IF;
            END IF;
            INSERT INTO nodes (parent_id, team, kind, name, state, tools,
                cap_credits, cap_time, cap_memory, avail_credits, avail_time, avail_memory,
                resv_credits, resv_time, resv_memory, used_credits, used_time, peak_memory,
                ret_credits, ret_time, ret_memory, workers_cap, workers_in_use,
                holder, epoch, plugin, estimate, strategy, created_ms)
            VALUES (p_parent, parent.team, p_kind, p_name, 'open', p_tools,
                p_credits, p_time, p_memory, p_credits, p_time, p_memory, 0, 0, 0, 0, 0, 0, 0, 0, 0, p_seats, 0,
                p_holder, p_epoch, p_plugin, p_estimate, p_strategy, p_now)
            RETURNING * INTO child;
            INSERT INTO events (node_id, team, kind, credits, time_ms, memory, detail, at_ms)
            VALUES (child.id, parent.team, 'reserve', p_credits, p_time, p_memory, 'from node ' || p_parent, p_now);
            RETURN NEXT child;
        END
        $fn$
        """,
        """
        CREATE OR REPLACE FUNCTION purser_settle(
            p_id BIGINT, p_credits BIGINT, p_time BIGINT, p_peak BIGINT, p_outcome TEXT, p_holder TEXT, p_epoch BIGINT,
            p_now BIGINT)
        RETURNS TABLE (s_used_credits BIGINT, s_used_time BIGINT, s_peak BIGINT, s_ret_credits BIGINT, s_ret_time BIGINT,
            s_ret_memory BIGINT, s_outcome TEXT)
        LANGUAGE plpgsql AS $fn$
        #variable_conflict use_column
        DECLARE
            n nodes;
            child BIGINT;
            u_credits BIGINT; u_time BIGINT; u_peak BIGINT;
            r_credits BIGINT; r_time BIGINT; r_memory BIGINT;
            seated BOOLEAN := FALSE;
        BEGIN
            SELECT * INTO n FROM nodes WHERE id = p_id FOR UPDATE;
            IF NOT FOUND THEN RAISE EXCEPTION 'no node %', p_id USING ERRCODE = 'PU002'; END IF;
            IF n.state = 'closed' THEN
                IF p_holder IS NOT NULL AND n.outcome = 'reclaimed' THEN
                    RAISE EXCEPTION 'node % was reclaimed from its holder; its settlement is final', p_id
                        USING ERRCODE = 'PU005';
                END IF;
                RETURN QUERY SELECT n.used_credits, n.used_time, n.peak_memory, n.ret_credits, n.ret_time, n.ret_memory,
                    COALESCE(n.outcome, '');
                RETURN;
            END IF;
            IF p_holder IS NOT NULL THEN
                IF n.holder IS NOT NULL AND (n.holder <> p_holder OR n.epoch <> p_epoch) THEN
                    RAISE EXCEPTION 'node % is held by % epoch %, not % epoch %', p_id, n.holder, n.epoch, p_holder, p_epoch
                        USING ERRCODE = 'PU005';
                END IF;
                PERFORM 1 FROM leases WHERE holder = p_holder AND epoch = p_epoch AND state = 'live' FOR KEY SHARE;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'lease % epoch % is no longer live', p_holder, p_epoch USING ERRCODE = 'PU005';
                END IF;
            END IF;
            IF p_credits < 0 OR p_time < 0 OR p_peak < 0 THEN
                RAISE EXCEPTION 'node %: usage must not be negative', p_id USING ERRCODE = 'PU006';
            END IF;
            FOR child IN SELECT id FROM nodes WHERE parent_id = p_id AND state = 'open' LOOP
                PERFORM purser_settle(child, 0, 0, 0, 'abandoned', NULL, NULL, p_now);
            END LOOP;
            SELECT * INTO n FROM nodes WHERE id = p_id;
            u_credits := LEAST(n.cap_credits, GREATEST(n.used_credits, p_credits));
            u_time := LEAST(n.cap_time, GREATEST(n.used_time, p_time));
            u_peak := GREATEST(n.peak_memory, p_peak);
            r_credits := n.cap_credits - u_credits;
            r_time := n.cap_time - u_time;
            r_memory := GREATEST(0, n.cap_memory - u_peak);
            IF p_credits > n.cap_credits THEN
                INSERT INTO events (node_id, team, kind, credits, time_ms, memory, detail, at_ms)
                VALUES (p_id, n.team, 'overspend_refused', p_credits - n.cap_credits, 0, 0,
                    format('declared %s µcredits, cap %s', p_credits, n.cap_credits), p_now);
            END IF;
            UPDATE nodes SET state = 'closed', outcome = p_outcome, closed_ms = p_now,
                avail_credits = 0, avail_time = 0, avail_memory = 0,
                used_credits = u_credits, used_time = u_time, peak_memory = u_peak,
                ret_credits = r_credits, ret_time = r_time, ret_memory = r_memory
            WHERE id = p_id AND state = 'open';
            IF n.parent_id IS NOT NULL THEN
                UPDATE nodes SET
                    resv_credits = resv_credits - n.cap_credits, used_credits = used_credits + u_credits,
                    avail_credits = avail_credits + r_credits,
                    resv_time = resv_time - n.cap_time, used_time = used_time + u_time, avail_time = avail_time + r_time,
                    resv_memory = resv_memory - n.cap_memory, avail_memory = avail_memory + n.cap_memory,
                    workers_in_use = workers_in_use
                        - CASE WHEN n.kind IN ('routine', 'step') AND kind <> 'team' AND workers_cap IS NOT NULL THEN 1 ELSE 0 END
                WHERE id = n.parent_id
                RETURNING n.kind IN ('routine', 'step') AND kind <> 'team' AND workers_cap IS NOT NULL INTO seated;
            END IF;
            IF n.kind IN ('routine', 'step') AND NOT COALESCE(seated, FALSE) THEN
                UPDATE nodes SET workers_in_use = workers_in_use - 1 WHERE kind = 'team' AND name = n.team;
            ELSIF n.kind <> 'team' AND n.workers_cap IS NOT NULL THEN
                UPDATE nodes SET workers_in_use = workers_in_use - n.workers_cap WHERE kind = 'team' AND name = n.team;
            END IF;
            INSERT INTO events (node_id, team, kind, credits, time_ms, memory, detail, at_ms)
            VALUES (p_id, n.team, 'settle', u_credits, u_time, u_peak, 'outcome ' || p_outcome, p_now),
                (p_id, n.team, 'return', r_credits, r_time, r_memory,
                    'to node ' || COALESCE(n.parent_id::TEXT, '-'), p_now);
            RETURN QUERY SELECT u_credits, u_time, u_peak, r_credits, r_time, r_memory, p_outcome;
        END
        $fn$
        """,
    ]
}

extension LedgerError.Code {
    /// The codes the server functions raise (SQLSTATE class PU).
    init?(sqlState: String) {
        switch sqlState {
        case "PU001": self = .insufficient
        case "PU002": self = .unknownNode
        case "PU003": self = .closed
        case "PU004": self = .toolNotPermitted
        case "PU005": self = .fenced
        case "PU006": self = .invalid
        case "PU007": self = .frozen
        default: return nil
        }
    }
}
