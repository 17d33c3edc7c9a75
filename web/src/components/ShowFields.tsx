// The fields of a show (title, description, language, author, public), for create and edit.

import { Field } from './Field.tsx'
import { useI18n } from '../i18n.ts'

export function ShowFields({
  initial,
}: {
  initial?: { title: string; description: string | null; language: string | null; author: string | null; public: boolean }
}) {
  const { t } = useI18n()
  return (
    <div className="grid-2">
      <Field label={t('podcasts.showTitle')} className="span-2">
        <input name="title" required defaultValue={initial?.title ?? ''} />
      </Field>
      <Field label={t('podcasts.description')} className="span-2">
        <textarea name="description" rows={3} defaultValue={initial?.description ?? ''} />
      </Field>
      <Field label={t('podcasts.language')}>
        <input name="language" placeholder="en, zh-CN" defaultValue={initial?.language ?? ''} />
      </Field>
      <Field label={t('podcasts.author')}>
        <input name="author" defaultValue={initial?.author ?? ''} />
      </Field>
      <label className="check-field span-2">
        <input type="checkbox" name="public" defaultChecked={initial?.public ?? false} />
        <span>{t('podcasts.publicToggle')}</span>
      </label>
    </div>
  )
}
