// Translates every visible string: the en and zh-CN dictionaries, the language choice
// (browser default, user override kept in localStorage) and the React hook to use them.

import { createContext, createElement, useCallback, useContext, useEffect, useMemo, useState } from 'react'
import type { ReactNode } from 'react'
import { en } from './locales/en.ts'
import { zhCN } from './locales/zh-CN.ts'

export type MessageKey = keyof typeof en

export const dictionaries: Record<Language, Record<MessageKey, string>> = {
  en,
  'zh-CN': zhCN,
}

export type Language = 'en' | 'zh-CN'

/** Offered in the switcher, each named in its own language. */
export const LANGUAGES: readonly { code: Language; name: string }[] = [
  { code: 'en', name: 'English' },
  { code: 'zh-CN', name: '中文' },
]

/** localStorage key for the user's explicit choice. */
export const LANGUAGE_STORAGE_KEY = 'aimake.language'

function isLanguage(value: unknown): value is Language {
  return value === 'en' || value === 'zh-CN'
}

/** Maps browser language tags (`zh-TW`, `en-GB`, ...) to the first one we have. */
export function matchLanguage(tags: readonly string[]): Language {
  for (const tag of tags) {
    const lower = tag.toLowerCase()
    if (lower.startsWith('zh')) return 'zh-CN'
    if (lower.startsWith('en')) return 'en'
  }
  return 'en'
}

/** The stored choice if any, else the browser's preference. */
export function initialLanguage(): Language {
  try {
    const stored = window.localStorage.getItem(LANGUAGE_STORAGE_KEY)
    if (isLanguage(stored)) return stored
  } catch {
    // Storage can be disabled (privacy modes); fall back to the browser language.
  }
  const tags = navigator.languages.length > 0 ? navigator.languages : [navigator.language]
  return matchLanguage(tags)
}

function storeLanguage(language: Language): void {
  try {
    window.localStorage.setItem(LANGUAGE_STORAGE_KEY, language)
  } catch {
    // Not remembered across reloads; the switch still applies now.
  }
}

/** Looks up `key` and fills `{name}` placeholders from `vars`. */
export function translate(
  language: Language,
  key: MessageKey,
  vars: Record<string, string | number> = {},
): string {
  return dictionaries[language][key].replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in vars ? String(vars[name]) : whole,
  )
}

export interface I18n {
  language: Language
  setLanguage: (language: Language) => void
  t: (key: MessageKey, vars?: Record<string, string | number>) => string
}

const I18nContext = createContext<I18n | null>(null)

export function I18nProvider({ children }: { children: ReactNode }) {
  const [language, setLanguageState] = useState<Language>(initialLanguage)

  useEffect(() => {
    document.documentElement.lang = language
  }, [language])

  const setLanguage = useCallback((next: Language) => {
    storeLanguage(next)
    setLanguageState(next)
  }, [])

  const value = useMemo<I18n>(
    () => ({ language, setLanguage, t: (key, vars) => translate(language, key, vars) }),
    [language, setLanguage],
  )
  return createElement(I18nContext.Provider, { value }, children)
}

export function useI18n(): I18n {
  const i18n = useContext(I18nContext)
  if (i18n === null) throw new Error('useI18n must be used inside <I18nProvider>')
  return i18n
}
