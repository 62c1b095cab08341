-- Storage schema 7: one alert per check, acknowledged, silenced, resolved as stale.
-- An alert keeps its features' failing rows (findings, JSON result rows), why it resolved
-- (resolution: "passed", "stale" or "merged"), who acknowledged it and when, until when it is
-- silenced, the event a silence held back (withheld) and when it was last notified. Older
-- resolved alerts resolved by a pass; every older alert was notified when it last changed.
ALTER TABLE alerts ADD COLUMN findings TEXT NOT NULL DEFAULT '[]';
ALTER TABLE alerts ADD COLUMN resolution TEXT;
ALTER TABLE alerts ADD COLUMN acknowledged_ms INTEGER;
ALTER TABLE alerts ADD COLUMN acknowledged_by TEXT;
ALTER TABLE alerts ADD COLUMN silenced_until_ms INTEGER;
ALTER TABLE alerts ADD COLUMN withheld TEXT;
ALTER TABLE alerts ADD COLUMN notified_ms INTEGER;
UPDATE alerts SET resolution = 'passed' WHERE state = 'resolved';
UPDATE alerts SET notified_ms = updated_ms;
-- Older releases opened one alert per feature ("univariate_drift:income"); the open ones of a
-- check fold into the check's alert, their latest rows its findings. Where the check has no
-- open alert of its own, its oldest feature alert becomes it.
CREATE TEMP TABLE feature_alerts AS
    SELECT id, model, version, severity,
        substr(check_name, 1, instr(check_name, ':') - 1) AS check_name,
        json_extract(evidence, '$[#-1].result') AS finding
    FROM alerts WHERE state = 'open' AND instr(check_name, ':') > 0;
UPDATE alerts SET check_name = substr(check_name, 1, instr(check_name, ':') - 1)
WHERE id IN (
    SELECT min(f.id) FROM feature_alerts AS f
    WHERE NOT EXISTS (
        SELECT 1 FROM alerts AS a
        WHERE a.state = 'open' AND a.model = f.model AND a.version = f.version
            AND a.check_name = f.check_name
    )
    GROUP BY f.model, f.version, f.check_name
);
UPDATE alerts SET
    findings = (
        SELECT json_group_array(json(finding)) FROM (
            SELECT f.finding FROM feature_alerts AS f
            WHERE f.model = alerts.model AND f.version = alerts.version
                AND f.check_name = alerts.check_name AND f.finding IS NOT NULL
            ORDER BY f.id
        )
    ),
    severity = CASE WHEN EXISTS (
        SELECT 1 FROM feature_alerts AS f
        WHERE f.model = alerts.model AND f.version = alerts.version
            AND f.check_name = alerts.check_name AND f.severity = 'critical'
    ) THEN 'critical' ELSE severity END
WHERE state = 'open' AND instr(check_name, ':') = 0 AND EXISTS (
    SELECT 1 FROM feature_alerts AS f
    WHERE f.model = alerts.model AND f.version = alerts.version
        AND f.check_name = alerts.check_name
);
UPDATE alerts SET state = 'resolved', resolution = 'merged', resolved_ms = updated_ms
WHERE state = 'open' AND instr(check_name, ':') > 0;
DROP TABLE feature_alerts;
-- Runs of failures are counted per check now; its own row's run carries on.
DELETE FROM alert_checks WHERE instr(check_name, ':') > 0;
