// Tiny DOM helpers: h('div.cls', {attrs, on: {click}}, ...children).

export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs != null && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (k in el && k !== 'list' && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

export function bytes(n) {
  if (n == null) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function duration(s) {
  if (s == null) return '–';
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60), ss = Math.floor(s % 60);
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${mm}m`;
  if (mm) return `${mm}m ${ss}s`;
  return `${ss}s`;
}

/** A modal dialog; resolves with the form's values or null. */
export function dialog(title, fields, okText, cancelText) {
  return new Promise((resolve) => {
    const inputs = {};
    const form = h('form.dialog', { on: { submit: (e) => { e.preventDefault(); done(true); } } },
      h('h3', title),
      fields.map((f) => {
        const input = f.type === 'textarea'
          ? h('textarea', { name: f.name, rows: 6, value: f.value ?? '' })
          : f.type === 'select'
            ? h('select', { name: f.name }, f.options.map((o) => h('option', { value: o, selected: o === f.value }, o)))
            : h('input', { name: f.name, type: f.type || 'text', value: f.value ?? '', placeholder: f.placeholder || '' });
        inputs[f.name] = input;
        return h('label', h('span', f.label), input);
      }),
      h('div.row.end',
        h('button', { type: 'button', on: { click: () => done(false) } }, cancelText),
        h('button.primary', { type: 'submit' }, okText)));
    const back = h('div.backdrop', form);
    function done(ok) {
      back.remove();
      if (!ok) return resolve(null);
      const v = {};
      for (const [k, i] of Object.entries(inputs)) v[k] = i.type === 'checkbox' ? i.checked : i.value;
      resolve(v);
    }
    document.body.append(back);
    (Object.values(inputs)[0] || form.querySelector('button.primary')).focus();
  });
}

let toastBox;
export function toast(text, kind = 'info') {
  if (!toastBox) toastBox = document.body.appendChild(h('div.toasts', { role: 'status' }));
  const t = h(`div.toast.${kind}`, text);
  toastBox.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 3500);
}
