// Reads the show form into the API's input shape.

import type { PodcastInput } from '../api.ts'

/** Reads the show fields of a form; empty optional fields are left out. */
export function showInput(data: FormData): PodcastInput {
  const text = (name: string) => String(data.get(name) ?? '').trim()
  const input: PodcastInput = { title: text('title'), public: data.get('public') === 'on' }
  for (const key of ['description', 'language', 'author'] as const) {
    const value = text(key)
    if (value !== '') input[key] = value
  }
  return input
}
