// Drafts kept in the browser (IndexedDB) as the user types: a closed tab, a
// reload or a dropped connection loses nothing. One draft per file id, with the
// version and content it started from.
const DB = 'vwed-drafts';
let opening;

function db() {
  opening ??= new Promise((resolve, reject) => {
    const r = indexedDB.open(DB, 1);
    r.onupgradeneeded = () => r.result.createObjectStore('drafts', { keyPath: 'file_id' });
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
  return opening;
}

async function run(mode, fn) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction('drafts', mode);
    const req = fn(tx.objectStore('drafts'));
    tx.oncomplete = () => resolve(req?.result);
    tx.onerror = () => reject(tx.error);
  });
}

/** {file_id, content, base_version, base_content, saved_at} or undefined. */
export const loadDraft = (fileId) => run('readonly', (s) => s.get(fileId));
export const saveDraft = (draft) => run('readwrite', (s) => s.put({ ...draft, saved_at: Date.now() }));
export const dropDraft = (fileId) => run('readwrite', (s) => s.delete(fileId));
export const allDrafts = () => run('readonly', (s) => s.getAll());
