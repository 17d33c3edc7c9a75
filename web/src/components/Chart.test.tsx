import { render } from '@testing-library/react'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type uPlot from 'uplot'
import { I18nProvider } from '../i18n.ts'
import { Chart } from './Chart.tsx'

// uPlot needs a canvas, which jsdom lacks: a stand-in records what the component asks of it.
const plots: { options: uPlot.Options; data: uPlot.AlignedData; setSize: ReturnType<typeof vi.fn>; setData: ReturnType<typeof vi.fn>; destroy: ReturnType<typeof vi.fn> }[] = []
vi.mock('uplot', () => ({
  default: vi.fn(function (this: unknown, options: uPlot.Options, data: uPlot.AlignedData) {
    const plot = { options, data, setSize: vi.fn(), setData: vi.fn(), destroy: vi.fn() }
    plots.push(plot)
    return plot
  }),
}))

let resized: (() => void) | null = null
const disconnect = vi.fn()

beforeEach(() => {
  plots.length = 0
  vi.stubGlobal(
    'ResizeObserver',
    class {
      constructor(callback: () => void) {
        resized = callback
      }
      observe() {}
      disconnect = disconnect
    },
  )
  vi.stubGlobal('matchMedia', () => ({ matches: false, addEventListener: vi.fn(), removeEventListener: vi.fn() }))
})

afterEach(() => {
  vi.unstubAllGlobals()
})

const DATA: uPlot.AlignedData = [
  [60, 120],
  [1, null],
]

function draw(data: uPlot.AlignedData = DATA) {
  return (
    <I18nProvider>
      <Chart label="Requests" data={data} lines={['Requests']} format={(v) => `${v}/s`} />
    </I18nProvider>
  )
}

describe('chart', () => {
  it('draws the lines at the width of its box, in the theme colours, with values written by the page', () => {
    const { getByRole } = render(draw())
    expect(getByRole('img', { name: 'Requests' })).toBeInTheDocument()
    expect(plots).toHaveLength(1)
    const { options, data } = plots[0]!
    expect(data).toBe(DATA)
    expect(options.width).toBeGreaterThan(0)
    expect(options.series.map((s) => s.label)).toEqual(['Time', 'Requests'])
    const value = options.series[1]?.value as (u: unknown, v: number | null) => string
    expect(value(null, 2)).toBe('2/s')
    expect(value(null, null)).toBe('–')
  })

  it('follows its box when it resizes, takes new data without rebuilding, and is released on unmount', () => {
    const { rerender, unmount } = render(draw())
    const plot = plots[0]!
    resized?.()
    expect(plot.setSize).toHaveBeenCalledWith({ width: expect.any(Number) as number, height: 160 })

    const next: uPlot.AlignedData = [
      [60, 120, 180],
      [1, 2, 3],
    ]
    rerender(draw(next))
    expect(plot.setData).toHaveBeenLastCalledWith(next)
    expect(plots).toHaveLength(1)

    unmount()
    expect(plot.destroy).toHaveBeenCalledOnce()
    expect(disconnect).toHaveBeenCalled()
  })
})
