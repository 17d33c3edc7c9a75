// Shapes usage rows for the chart: one column per day of the range, one stack per service.

import type { UsageRow } from '../api.ts'

export type Metric = 'units' | 'cost_micros'

export interface DayColumn {
  day: string
  /** Value per service, in `services` order. */
  values: number[]
  total: number
}

export interface UsageSeries {
  services: string[]
  days: DayColumn[]
  /** Total per service over the range, in `services` order. */
  totals: { units: number; cost_micros: number }[]
  /** The part of each total used through the OpenAI-compatible API (`/v1`), in `services` order. */
  gateway: { units: number; cost_micros: number }[]
  max: number
}

/** Every `YYYY-MM-DD` from `from` to `to`, both included (UTC). */
export function daysBetween(from: string, to: string): string[] {
  const start = Date.parse(`${from}T00:00:00Z`)
  const end = Date.parse(`${to}T00:00:00Z`)
  if (!Number.isFinite(start) || !Number.isFinite(end) || end < start) return []
  const out: string[] = []
  // A year of days at most keeps a typo in the range from freezing the page.
  for (let t = start; t <= end && out.length < 366; t += 86_400_000) out.push(new Date(t).toISOString().slice(0, 10))
  return out
}

export function usageSeries(rows: readonly UsageRow[], from: string, to: string, metric: Metric): UsageSeries {
  const services = [...new Set(rows.map((r) => r.service))].sort()
  const index = new Map(services.map((s, i) => [s, i]))
  const days = daysBetween(from, to).map((day) => ({ day, values: services.map(() => 0), total: 0 }))
  const byDay = new Map(days.map((d) => [d.day, d]))
  const totals = services.map(() => ({ units: 0, cost_micros: 0 }))
  const gateway = services.map(() => ({ units: 0, cost_micros: 0 }))
  for (const row of rows) {
    const i = index.get(row.service) ?? 0
    const total = totals[i]
    if (total !== undefined) {
      total.units += row.units
      total.cost_micros += row.cost_micros
    }
    const viaGateway = gateway[i]
    if (row.source === 'gateway' && viaGateway !== undefined) {
      viaGateway.units += row.units
      viaGateway.cost_micros += row.cost_micros
    }
    const column = byDay.get(row.day.slice(0, 10))
    if (column !== undefined) {
      column.values[i] = (column.values[i] ?? 0) + row[metric]
      column.total += row[metric]
    }
  }
  const max = days.reduce((m, d) => Math.max(m, d.total), 0)
  return { services, days, totals, gateway, max }
}

/** Distinct in light and dark themes; services beyond eight reuse them. */
const COLORS = ['#4f46e5', '#0891b2', '#ca8a04', '#db2777', '#16a34a', '#9333ea', '#ea580c', '#64748b']

export function serviceColor(index: number): string {
  return COLORS[index % COLORS.length] as string
}
