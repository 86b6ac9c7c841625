-- Update claims moved to Redis (see src/updates.rs), nothing reads or writes
-- this table any more. Dropping it drops its index.
DROP TABLE IF EXISTS processed_updates
