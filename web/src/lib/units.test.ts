import { describe, expect, it } from 'vitest'
import { countChars, estimateCostMicros, providerOf } from './cost.ts'
import { formatDuration, formatMoney } from './format.ts'
import { bucketPeaks, normalizePeaks } from './peaks.ts'
import { matchPath, safeNext } from '../router.ts'
import { PROVIDERS, VOICES, voice } from '../test/fixtures.ts'
import { defaultVoice, downloadPercent, groupVoices, isNeural, languagesOf, neuralDownload, speakerVoice } from './voices.ts'

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
  it('groups by provider: neural providers first, unavailable providers last, better voices first', () => {
    expect(groupVoices(VOICES, PROVIDERS).map((g) => [g.provider, g.available, g.voices.length])).toEqual([
      ['kokoro', true, 4],
      ['piper', true, 2],
      ['local', true, 2],
      ['openai', true, 1],
      ['tencent', true, 1],
      ['elevenlabs', false, 1],
    ])
    // Piper's high-quality voice before its medium one, whatever their names.
    expect(groupVoices(VOICES, PROVIDERS)[1]?.voices.map((v) => v.id)).toEqual([
      'piper:en_GB-fen-high',
      'piper:en_US-harbor-medium',
    ])
  })

  it('lists neural providers first even when the server lists them later', () => {
    const reordered = [...PROVIDERS.filter((p) => !isNeural(p.id)), ...PROVIDERS.filter((p) => isNeural(p.id))]
    expect(groupVoices(VOICES, reordered).map((g) => g.provider).slice(0, 3)).toEqual(['kokoro', 'piper', 'local'])
  })

  it('lists each language once', () => {
    expect(languagesOf(VOICES)).toEqual(['en-GB', 'en-US', 'zh-CN'])
  })

  it('defaults to the voice the server marks as the default for the UI language', () => {
    expect(defaultVoice(VOICES, PROVIDERS, 'en')).toBe('kokoro:af_heart')
    expect(defaultVoice(VOICES, PROVIDERS, 'en-GB')).toBe('kokoro:af_heart')
    expect(defaultVoice(VOICES, PROVIDERS, 'zh-CN')).toBe('kokoro:zf_xiaoxiao')
    // Which voice is the default is the server's call, not the list's order.
    const michael = VOICES.map((v) =>
      v.provider === 'kokoro' && v.language === 'en-US' ? { ...v, default: v.id === 'kokoro:am_michael' } : v,
    )
    expect(defaultVoice(michael, PROVIDERS, 'en')).toBe('kokoro:am_michael')
  })

  it('falls back to a voice in the UI language when the default cannot be used', () => {
    const kokoroDown = PROVIDERS.map((p) => (p.id === 'kokoro' ? { ...p, available: false } : p))
    expect(defaultVoice(VOICES, kokoroDown, 'en')).toBe('piper:en_US-harbor-medium')
    expect(defaultVoice(VOICES, kokoroDown, 'zh-CN')).toBe('local:cmn')
    expect(defaultVoice([], PROVIDERS, 'en')).toBe('')

    const espeak = VOICES.filter((v) => v.provider === 'local')
    expect(defaultVoice(espeak, PROVIDERS, 'zh-CN')).toBe('local:cmn')
    expect(defaultVoice(espeak, PROVIDERS, 'en')).toBe('local:en-us')
    const cantonese = voice({ id: 'local:yue', name: 'Cantonese', language: 'zh-HK', quality: 'basic' })
    expect(defaultVoice([cantonese, ...espeak], PROVIDERS, 'zh-CN')).toBe('local:cmn')
    const british = voice({ id: 'local:en-gb', name: 'British', language: 'en-GB', quality: 'basic' })
    expect(defaultVoice([british, ...espeak], PROVIDERS, 'en')).toBe('local:en-us')
  })

  it('gives speakers different voices of the default voice’s provider, same language variant first', () => {
    const [a, b, c, d] = [0, 1, 2, 3].map((i) => speakerVoice(VOICES, PROVIDERS, 'en', i))
    expect([a, b, c]).toEqual(['kokoro:af_heart', 'kokoro:am_michael', 'kokoro:bf_emma'])
    expect(d).toBe(a)
    // Chinese speakers stay with Chinese voices, even when that is only one.
    expect(speakerVoice(VOICES, PROVIDERS, 'zh-CN', 1)).toBe('kokoro:zf_xiaoxiao')

    const espeak = VOICES.filter((v) => v.provider === 'local')
    const british = voice({ id: 'local:en-gb', name: 'English (UK)', language: 'en-GB', quality: 'basic' })
    const [e, f, g] = [0, 1, 2].map((i) => speakerVoice([...espeak, british], PROVIDERS, 'en', i))
    expect([e, f]).toEqual(['local:en-us', 'local:en-gb'])
    expect(g).toBe(e)
    expect(speakerVoice(espeak, PROVIDERS, 'en', 1)).toBe('local:en-us')
  })

  it('reads a download as a percentage, when its size is known', () => {
    expect(downloadPercent({ done_bytes: 45, total_bytes: 100 })).toBe(45)
    expect(downloadPercent({ done_bytes: 999, total_bytes: 1000 })).toBe(99)
    expect(downloadPercent({ done_bytes: 5, total_bytes: 0 })).toBeNull()
    expect(neuralDownload(PROVIDERS)).toBeNull()
    const downloading = PROVIDERS.map((p) =>
      p.id === 'kokoro' ? { ...p, available: false, progress: { done_bytes: 1, total_bytes: 2 } } : p,
    )
    expect(neuralDownload(downloading)?.id).toBe('kokoro')
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
