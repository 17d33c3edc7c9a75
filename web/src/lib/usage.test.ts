import { describe, expect, it } from 'vitest'
import { daysBetween, usageSeries } from './usage.ts'

describe('daysBetween', () => {
  it('lists every day of the range, both ends included, across a month end', () => {
    expect(daysBetween('2026-01-30', '2026-02-02')).toEqual(['2026-01-30', '2026-01-31', '2026-02-01', '2026-02-02'])
  })

  it('is empty for a reversed or malformed range', () => {
    expect(daysBetween('2026-02-02', '2026-01-30')).toEqual([])
    expect(daysBetween('nope', '2026-01-30')).toEqual([])
  })
})

describe('usageSeries', () => {
  const rows = [
    { day: '2026-03-01', service: 'tts:openai:tts-1', units: 1000, cost_micros: 15000 },
    { day: '2026-03-01', service: 'tts:local', units: 500, cost_micros: 0 },
    { day: '2026-03-03', service: 'tts:openai:tts-1', units: 2000, cost_micros: 30000 },
  ]

  it('stacks services per day and fills days without usage with zero', () => {
    const series = usageSeries(rows, '2026-03-01', '2026-03-03', 'units')

    expect(series.services).toEqual(['tts:local', 'tts:openai:tts-1'])
    expect(series.days.map((d) => [d.day, d.values, d.total])).toEqual([
      ['2026-03-01', [500, 1000], 1500],
      ['2026-03-02', [0, 0], 0],
      ['2026-03-03', [0, 2000], 2000],
    ])
    expect(series.max).toBe(2000)
  })

  it('charts cost when asked and totals both measures per service', () => {
    const series = usageSeries(rows, '2026-03-01', '2026-03-03', 'cost_micros')

    expect(series.days.map((d) => d.total)).toEqual([15000, 0, 30000])
    expect(series.totals).toEqual([
      { units: 500, cost_micros: 0 },
      { units: 3000, cost_micros: 45000 },
    ])
  })

  it('sets apart what each service used through the OpenAI-compatible API', () => {
    const mixed = [
      { day: '2026-03-01', service: 'tts:openai:tts-1', source: 'app' as const, units: 1000, cost_micros: 15000 },
      { day: '2026-03-01', service: 'tts:openai:tts-1', source: 'gateway' as const, units: 400, cost_micros: 6000 },
      { day: '2026-03-02', service: 'tts:local:espeak-ng', source: 'gateway' as const, units: 50, cost_micros: 0 },
    ]
    const series = usageSeries(mixed, '2026-03-01', '2026-03-02', 'units')

    expect(series.services).toEqual(['tts:local:espeak-ng', 'tts:openai:tts-1'])
    expect(series.totals).toEqual([
      { units: 50, cost_micros: 0 },
      { units: 1400, cost_micros: 21000 },
    ])
    expect(series.gateway).toEqual([
      { units: 50, cost_micros: 0 },
      { units: 400, cost_micros: 6000 },
    ])
    expect(usageSeries(rows, '2026-03-01', '2026-03-03', 'units').gateway).toEqual([
      { units: 0, cost_micros: 0 },
      { units: 0, cost_micros: 0 },
    ])
  })
})
