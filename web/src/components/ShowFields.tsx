// The fields of a show (title, description, language, author, public), for create and edit.

import { useI18n } from '../i18n.ts'

export function ShowFields({
  initial,
}: {
  initial?: { title: string; description: string | null; language: string | null; author: string | null; public: boolean }
}) {
  const { t } = useI18n()
  return (
    <div className="grid-2">
      <label className="field span-2">
        <span>{t('podcasts.showTitle')}</span>
        <input name="title" required defaultValue={initial?.title ?? ''} />
      </label>
      <label className="field span-2">
        <span>{t('podcasts.description')}</span>
        <textarea name="description" rows={3} defaultValue={initial?.description ?? ''} />
      </label>
      <label className="field">
        <span>{t('podcasts.language')}</span>
        <input name="language" placeholder="en, zh-CN" defaultValue={initial?.language ?? ''} />
      </label>
      <label className="field">
        <span>{t('podcasts.author')}</span>
        <input name="author" defaultValue={initial?.author ?? ''} />
      </label>
      <label className="check-field span-2">
        <input type="checkbox" name="public" defaultChecked={initial?.public ?? false} />
        <span>{t('podcasts.publicToggle')}</span>
      </label>
    </div>
  )
}
