import { h } from '../h.js';
import { t, getLang, setLang } from '../i18n.js';
import { call } from '../api.js';

export function loginScreen(done) {
  const user = h('input', { name: 'username', autocomplete: 'username', required: true });
  const pass = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const err = h('p.error', { role: 'alert' });
  const form = h('form.login', {
    on: {
      submit: async (e) => {
        e.preventDefault();
        err.textContent = '';
        try {
          await call('POST', '/api/auth/login', { username: user.value, password: pass.value });
          done();
        } catch (x) {
          err.textContent = x.status === 401 || x.status === 403 ? t('Wrong user name or password') + ` (${x.message})` : x.message;
        }
      },
    },
  },
  h('h1', 'VWED Edge'),
  h('label', h('span', t('User name')), user),
  h('label', h('span', t('Password')), pass),
  err,
  h('div.row.end',
    h('button', { type: 'button', on: { click: () => { setLang(getLang() === 'zh' ? 'en' : 'zh'); location.reload(); } } }, getLang() === 'zh' ? 'English' : '中文'),
    h('button.primary', { type: 'submit' }, t('Log in'))));
  setTimeout(() => user.focus());
  return h('div.center', form);
}
