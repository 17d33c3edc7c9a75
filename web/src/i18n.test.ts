import { describe, expect, it, vi } from 'vitest'
import {
  LANGUAGE_STORAGE_KEY,
  LANGUAGES,
  dictionaries,
  initialLanguage,
  matchLanguage,
  translate,
} from './i18n.ts'

const en = dictionaries.en
const zh = dictionaries['zh-CN']
const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort()

describe('dictionaries', () => {
  it('have the same keys in en and zh-CN', () => {
    expect(Object.keys(zh).sort()).toEqual(Object.keys(en).sort())
  })

  it('have no empty strings', () => {
    for (const dictionary of Object.values(dictionaries)) {
      for (const [key, text] of Object.entries(dictionary)) {
        expect(text.trim(), key).not.toBe('')
      }
    }
  })

  it('use the same placeholders in every language', () => {
    for (const key of Object.keys(en) as (keyof typeof en)[]) {
      expect(placeholders(zh[key]), key).toEqual(placeholders(en[key]))
    }
  })

  it('cover every language offered in the switcher', () => {
    for (const { code } of LANGUAGES) expect(dictionaries[code]).toBeDefined()
  })
})

describe('translate', () => {
  it('fills placeholders', () => {
    expect(translate('en', 'error.requestId', { id: 'abc' })).toBe('Request ID: abc')
    expect(translate('zh-CN', 'error.requestId', { id: 'abc' })).toBe('请求 ID：abc')
  })
})

describe('language choice', () => {
  it('maps browser tags to a supported language', () => {
    expect(matchLanguage(['zh-TW'])).toBe('zh-CN')
    expect(matchLanguage(['zh'])).toBe('zh-CN')
    expect(matchLanguage(['en-GB', 'zh-CN'])).toBe('en')
    expect(matchLanguage(['fr-FR', 'zh-CN'])).toBe('zh-CN')
    expect(matchLanguage(['fr-FR'])).toBe('en')
    expect(matchLanguage([])).toBe('en')
  })

  it('follows navigator.languages when nothing is stored', () => {
    vi.spyOn(navigator, 'languages', 'get').mockReturnValue(['zh-CN', 'en'])

    expect(initialLanguage()).toBe('zh-CN')
  })

  it('prefers the stored choice over the browser', () => {
    vi.spyOn(navigator, 'languages', 'get').mockReturnValue(['zh-CN'])
    window.localStorage.setItem(LANGUAGE_STORAGE_KEY, 'en')

    expect(initialLanguage()).toBe('en')
  })

  it('ignores a stored value that is not a supported language', () => {
    vi.spyOn(navigator, 'languages', 'get').mockReturnValue(['zh-CN'])
    window.localStorage.setItem(LANGUAGE_STORAGE_KEY, 'klingon')

    expect(initialLanguage()).toBe('zh-CN')
  })
})
