-- A human re-run from review starts a new round of a segment's attempts; only the latest round
-- decides (its limits, its escalations). `requested_by` names the person whose re-run created
-- the attempt (NULL for automatic attempts).
ALTER TABLE retry_attempts ADD COLUMN round INTEGER NOT NULL DEFAULT 1 CHECK (round >= 1);
ALTER TABLE retry_attempts ADD COLUMN requested_by TEXT;

-- Attempts stored before rounds were recorded: a re-run's attempt says why it exists
-- ("<actor> re-ran the segment from review: …"); each one began a round.
UPDATE retry_attempts SET requested_by = split_part(why, ' re-ran the segment from review', 1)
WHERE why LIKE '% re-ran the segment from review%';

UPDATE retry_attempts SET round = 1 + (
    SELECT COUNT(*) FROM retry_attempts b
    WHERE b.segment_id = retry_attempts.segment_id
      AND b.attempt_number <= retry_attempts.attempt_number
      AND b.requested_by IS NOT NULL
)
WHERE EXISTS (
    SELECT 1 FROM retry_attempts c
    WHERE c.segment_id = retry_attempts.segment_id AND c.requested_by IS NOT NULL
);
