import { describe, expect, it } from 'vitest'
import { countChars, estimateCostMicros, providerOf } from './cost.ts'
import { formatDuration, formatMoney } from './format.ts'
import { bucketPeaks, normalizePeaks } from './peaks.ts'
import { matchPath, safeNext } from '../router.ts'
import { PROVIDERS, VOICES } from '../test/fixtures.ts'
import { defaultVoice, groupVoices, languagesOf, speakerVoice } from './voices.ts'

describe('cost estimate', () => {
  it('prices a million characters at the default rates and tencent as unknown', () => {
    expect(estimateCostMicros('openai', 1_000_000)).toBe(15_000_000)
    expect(estimateCostMicros('elevenlabs', 1_000_000)).toBe(300_000_000)
    expect(estimateCostMicros('local', 1_000_000)).toBe(0)
    expect(estimateCostMicros('tencent', 1000)).toBeNull()
    expect(estimateCostMicros('someone-new', 1000)).toBeNull()
  })

  it('counts an emoji or a CJK ideograph as one character', () => {
    expect(countChars('你好👋')).toBe(3)
    expect(countChars('')).toBe(0)
  })

  it('takes the provider from a voice id', () => {
    expect(providerOf('elevenlabs:21m00Tcm4TlvDq8ikWAM')).toBe('elevenlabs')
    expect(providerOf('local')).toBe('local')
  })

  it('shows small costs with enough digits to not read as zero', () => {
    expect(formatMoney(150, 'en')).toBe('$0.0002')
    expect(formatMoney(15_000_000, 'en')).toBe('$15.00')
    expect(formatMoney(0, 'en')).toBe('$0.00')
  })
})

describe('formatDuration', () => {
  it('writes minutes and seconds, and hours when needed', () => {
    expect(formatDuration(1500)).toBe('0:02')
    expect(formatDuration(61_000)).toBe('1:01')
    expect(formatDuration(3_726_000)).toBe('1:02:06')
    expect(formatDuration(null)).toBe('–')
  })
})

describe('peaks', () => {
  it('scales any range to 0..1 by the loudest absolute value', () => {
    expect(normalizePeaks([0, -16384, 32767, 8192])).toEqual([0, 16384 / 32767, 1, 8192 / 32767])
    expect(normalizePeaks([0, 0])).toEqual([0, 0])
  })

  it('keeps the loudest peak of each bar', () => {
    expect(bucketPeaks([0.1, 0.9, 0.2, 0.3], 2)).toEqual([0.9, 0.3])
    expect(bucketPeaks([0.5], 3)).toEqual([0.5, 0.5, 0.5])
    expect(bucketPeaks([], 3)).toEqual([])
  })
})

describe('voices', () => {
  it('groups by provider with unavailable providers last', () => {
    expect(groupVoices(VOICES, PROVIDERS).map((g) => [g.provider, g.available, g.voices.length])).toEqual([
      ['local', true, 2],
      ['openai', true, 1],
      ['tencent', true, 1],
      ['elevenlabs', false, 1],
    ])
  })

  it('lists each language once', () => {
    expect(languagesOf(VOICES)).toEqual(['en-US', 'zh-CN'])
  })

  it('defaults to an available voice in the UI language', () => {
    expect(defaultVoice(VOICES, PROVIDERS, 'zh-CN')).toBe('local:cmn')
    expect(defaultVoice(VOICES, PROVIDERS, 'en')).toBe('local:en-us')
    expect(defaultVoice([], PROVIDERS, 'en')).toBe('')
    const cantonese = { id: 'local:yue', provider: 'local', name: 'Cantonese', language: 'zh-HK', gender: null }
    expect(defaultVoice([cantonese, ...VOICES], PROVIDERS, 'zh-CN')).toBe('local:cmn')
    const british = { id: 'local:en-gb', provider: 'local', name: 'British', language: 'en-GB', gender: null }
    expect(defaultVoice([british, ...VOICES], PROVIDERS, 'en')).toBe('local:en-us')
  })

  it('gives speakers different voices of the same provider and language when it can', () => {
    const british = { id: 'local:en-gb', provider: 'local', name: 'English (UK)', language: 'en-GB', gender: null }
    const voices = [...VOICES, british]
    const [a, b, c] = [0, 1, 2].map((i) => speakerVoice(voices, PROVIDERS, 'en', i))
    expect(new Set([a, b])).toEqual(new Set(['local:en-us', 'local:en-gb']))
    expect(c).toBe(a)
    expect(speakerVoice(VOICES, PROVIDERS, 'en', 1)).toBe('local:en-us')
  })
})

describe('router', () => {
  it('matches patterns with parameters', () => {
    expect(matchPath('/podcasts/:id', '/podcasts/01ABC')).toEqual({ id: '01ABC' })
    expect(matchPath('/podcasts/:id/new', '/podcasts/01ABC/new')).toEqual({ id: '01ABC' })
    expect(matchPath('/podcasts/:id', '/podcasts/01ABC/new')).toBeNull()
    expect(matchPath('/studio', '/studio/')).toEqual({})
    expect(matchPath('/studio', '/library')).toBeNull()
  })

  it('only goes back to paths of this app after login', () => {
    expect(safeNext('/library?q=x')).toBe('/library?q=x')
    expect(safeNext('//evil.example/')).toBe('/studio')
    expect(safeNext('https://evil.example/')).toBe('/studio')
    expect(safeNext(null)).toBe('/studio')
  })
})
