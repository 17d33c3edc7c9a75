-- Every new audio checks the user's monthly quota: the sum of this month's speech units.
-- With the service and units in the index, that sum reads the index alone instead of one
-- table row per request made this month.
DROP INDEX usage_user_day;
CREATE INDEX usage_user_day ON usage_logs (user_id, day, service, units);
