-- Storage schema 5: every stored result row has "severity". A row without one gets "warning" for
-- a warning, "critical" for an alert at the critical level (details.level), "warning" for another
-- alert, null otherwise; a row that has one (stored by a release with the one result type) keeps
-- it. Result rows are stored in windows.results, in each alert's evidence, and in the evidence
-- of each check's recent outcomes (alert_checks), which new alerts take theirs from.
UPDATE windows SET results = iw_results_with_severity(results) WHERE results IS NOT NULL;
UPDATE alerts SET evidence = iw_evidence_with_severity(evidence);
UPDATE alert_checks SET history = iw_history_with_severity(history);
