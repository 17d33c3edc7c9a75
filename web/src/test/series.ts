// Minute series answers as docs/api.md describes them, for the Monitoring page's tests.

import type { MetricsSeries, Sampled, SeriesMinute, SeriesRange } from '../api.ts'

/** 2026-12-07T08:00:00Z */
export const START = 1_796_630_400

export function minute(index: number, overrides: Partial<SeriesMinute> = {}): SeriesMinute {
  return {
    start: START + index * 60,
    requests: 0,
    errors_5xx: 0,
    p50_s: null,
    p99_s: null,
    provider_calls: { tts: 0, llm: 0, asr: 0 },
    provider_errors: { tts: 0, llm: 0, asr: 0 },
    provider_p50_s: { tts: null, llm: null, asr: null },
    provider_p99_s: { tts: null, llm: null, asr: null },
    cost_usd: 0,
    db_errors: 0,
    storage_errors: 0,
    backup_failures: 0,
    sampled: null,
    ...overrides,
  }
}

export function sample(overrides: Partial<Sampled> = {}): Sampled {
  return {
    jobs_queued: 0,
    jobs_running: 0,
    jobs_failed: 0,
    disk_free_permille: 500,
    db_bytes: 0,
    wal_bytes: 0,
    last_backup_unix: 0,
    ...overrides,
  }
}

/** A series of `count` minutes, the given ones replaced, `window` summed from them. */
export function seriesOf(
  range: SeriesRange,
  count: number,
  changed: Record<number, Partial<SeriesMinute>> = {},
  extra: Partial<MetricsSeries> = {},
): MetricsSeries {
  const minutes = Array.from({ length: count }, (_, i) => minute(i, changed[i]))
  const sum = (pick: (m: SeriesMinute) => number) => minutes.reduce((total, m) => total + pick(m), 0)
  const latest = [...minutes].reverse().find((m) => m.sampled !== null)?.sampled ?? null
  return {
    range,
    minutes,
    window: {
      minutes: count,
      requests: sum((m) => m.requests),
      errors_5xx: sum((m) => m.errors_5xx),
      p50_s: null,
      p99_s: null,
      provider_calls: { tts: sum((m) => m.provider_calls.tts), llm: sum((m) => m.provider_calls.llm), asr: 0 },
      provider_errors: { tts: sum((m) => m.provider_errors.tts), llm: sum((m) => m.provider_errors.llm), asr: 0 },
      provider_p50_s: { tts: null, llm: null, asr: null },
      provider_p99_s: { tts: null, llm: null, asr: null },
      cost_usd: sum((m) => m.cost_usd),
      db_errors: 0,
      storage_errors: 0,
      backup_failures: 0,
      latest,
    },
    cost_today_usd: 0,
    daily_budget_usd: null,
    ...extra,
  }
}
