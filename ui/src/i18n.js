// Languages: the UI's own strings are written in English and looked up in
// ZH for Chinese; the API answers in Chinese, and `tr` translates its messages
// for the English UI by matching them against the templates read from the
// runtime's sources (messages-zh.json) and their English (messages-en.js).
import CATALOG from './messages-zh.json' with { type: 'json' };
import { EN } from './messages-en.js';
import { ZH } from './strings-zh.js';

const KEY = 'vwed.lang';
let lang = pick();

function pick() {
  const saved = localStorage.getItem(KEY);
  if (saved === 'zh' || saved === 'en') return saved;
  const langs = navigator.languages?.length ? navigator.languages : [navigator.language || 'en'];
  return langs.some((l) => l.toLowerCase().startsWith('zh')) ? 'zh' : 'en';
}

export function getLang() {
  return lang;
}

export function setLang(l) {
  lang = l;
  localStorage.setItem(KEY, l);
  document.documentElement.lang = l === 'zh' ? 'zh-CN' : 'en';
}

/** A UI string in the current language; `{0}`, `{1}` are filled from args. */
export function t(s, ...args) {
  const text = lang === 'zh' ? ZH[s] ?? s : s;
  return args.length ? text.replace(/\{(\d)\}/g, (_, i) => String(args[+i] ?? '')) : text;
}

const CJK = /[\u3400-\u9fff\uff00-\uffef]/;
let compiled;

function escape(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Templates as anchored regexes, the most literal text first. */
function templates() {
  if (compiled) return compiled;
  compiled = CATALOG.filter((z) => EN[z] !== undefined)
    .map((z) => ({
      re: new RegExp('^' + z.split('{}').map(escape).join('([\\s\\S]*?)') + '$'),
      en: EN[z],
      weight: z.replace(/\{\}/g, '').length,
    }))
    .sort((a, b) => b.weight - a.weight);
  return compiled;
}

/** An API message in the current language (depth bounds nested templates). */
export function tr(msg, depth = 0) {
  if (msg == null) return '';
  msg = String(msg);
  if (lang === 'zh' || !CJK.test(msg) || depth > 4) return msg;
  for (const { re, en } of templates()) {
    const m = re.exec(msg);
    if (m) return en.replace(/\{(\d)\}/g, (_, i) => tr(m[+i + 1] ?? '', depth + 1));
  }
  return msg;
}

/** Whether every template has an English text (used by the tests). */
export function untranslated() {
  return CATALOG.filter((z) => EN[z] === undefined);
}

setLang(lang);
