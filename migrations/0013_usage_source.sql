-- Usage through the OpenAI-compatible API (`/v1`) is told apart from the app's own, so the
-- usage page can show it. The report indexes hold the column in the order they group by.
ALTER TABLE usage_logs ADD COLUMN source TEXT NOT NULL DEFAULT 'app' CHECK (source IN ('app', 'gateway'));
DROP INDEX usage_user_day;
CREATE INDEX usage_user_day ON usage_logs (user_id, day, service, source, units, cost_micros, cached);
DROP INDEX usage_day;
CREATE INDEX usage_day ON usage_logs (day, service, source, units, cost_micros, cached);
