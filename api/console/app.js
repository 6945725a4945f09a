// Berth web console: a single-page application over the management API.
//
// Plain JavaScript, no build step, no dependency. Pages are hash routes
// (#/workspaces, #/ws/NAME, #/repo/WS/PATH, #/upload, #/push, #/admin/...);
// every string shown comes from i18n/<lang>.json through t(). The session is
// the HttpOnly cookie set by POST /api/v1/session; its CSRF token is kept in
// memory only and sent as X-CSRF-Token with every request that may change
// something. Features of endpoints that a server may not have (trash, garbage
// collection, archive import) are shown only when the server's OpenAPI
// document lists them.
(function () {
  'use strict';

  var LANGS = { 'en': 'English', 'zh-CN': '简体中文' };
  var MAX_UPLOAD = 2 * 1024 * 1024 * 1024; // 2 GiB, the server's limit for a browser upload
  var PAGE = 50;                           // rows per page of the paged lists
  var RENEW_EVERY = 4 * 60 * 1000;         // renew an active session this often

  var state = {
    lang: 'en',
    msgs: {},
    ops: new Set(),   // "METHOD /api/v1/path" of the server's OpenAPI document
    me: null,         // GET /api/v1/me
    csrf: '',
    lastRenew: 0,
    lastActivity: 0,
    pageSeq: 0,       // bumped on every navigation; stale async renders check it
    cache: {}         // per-session lists (projects, own workspaces)
  };

  // ---- i18n ----

  function pickLang() {
    var saved = null;
    try { saved = localStorage.getItem('berth.lang'); } catch (e) { /* private mode */ }
    if (saved && LANGS[saved]) return saved;
    var langs = navigator.languages || [navigator.language || 'en'];
    for (var i = 0; i < langs.length; i++) {
      var l = String(langs[i]).toLowerCase();
      if (l.indexOf('zh') === 0) return 'zh-CN';
      if (l.indexOf('en') === 0) return 'en';
    }
    return 'en';
  }

  function loadLang(lang) {
    return fetch('/console/i18n/' + lang + '.json', { credentials: 'same-origin' })
      .then(function (r) { if (!r.ok) throw new Error('i18n ' + lang + ': ' + r.status); return r.json(); })
      .then(function (m) {
        state.lang = lang;
        state.msgs = m;
        document.documentElement.lang = lang;
      });
  }

  // t returns the message key in the current language with {name} replaced
  // from params.
  function t(key, params) {
    var s = Object.prototype.hasOwnProperty.call(state.msgs, key) ? state.msgs[key] : key;
    if (params) {
      s = s.replace(/\{(\w+)\}/g, function (m, k) {
        return Object.prototype.hasOwnProperty.call(params, k) ? String(params[k]) : m;
      });
    }
    return s;
  }

  // ---- DOM ----

  // h builds an element: h('a', {href: '#/x', onclick: fn, class: 'c'}, 'text', child, [more]).
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k.indexOf('on') === 0 && typeof v === 'function') {
          el.addEventListener(k.slice(2), v);
        } else if (k === 'class') {
          el.className = v;
        } else if (k === 'value' || k === 'checked' || k === 'selected') {
          el[k] = v;
        } else if (v === true) {
          el.setAttribute(k, '');
        } else {
          el.setAttribute(k, String(v));
        }
      });
    }
    for (var i = 2; i < arguments.length; i++) append(el, arguments[i]);
    return el;
  }

  function append(el, c) {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) { c.forEach(function (x) { append(el, x); }); return; }
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }

  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); return el; }

  function $(id) { return document.getElementById(id); }

  // toast shows a short message; with action ({label, fn, id}) it holds a
  // button (an undo) and stays longer.
  function toast(msg, kind, action) {
    var box = $('toasts');
    var el = h('div', { class: 'toast ' + (kind || 'ok'), role: 'status' }, msg);
    var stay = 3500;
    if (action) {
      stay = 12000;
      el.appendChild(h('button', { type: 'button', class: 'small', id: action.id, onclick: function () {
        if (el.parentNode) el.parentNode.removeChild(el);
        action.fn();
      } }, action.label));
    }
    box.appendChild(el);
    while (box.children.length > 3) box.removeChild(box.firstChild);
    setTimeout(function () { el.classList.add('gone'); }, stay);
    setTimeout(function () { if (el.parentNode) el.parentNode.removeChild(el); }, stay + 500);
  }

  function errorBox(err) {
    return h('div', { class: 'alert error', role: 'alert' }, errText(err));
  }

  function errText(err) {
    if (err && err.status === 403) return t('error.forbidden', { message: err.message });
    if (err && err.status === 404) return t('error.notfound', { message: err.message });
    if (err && err.status === 0) return t('error.network');
    return (err && err.message) || String(err);
  }

  // dialog shows a modal with body (nodes) and buttons; it resolves with the
  // value of the button pressed (null when dismissed with Escape).
  function dialog(title, body, buttons) {
    return new Promise(function (resolve) {
      var d = h('dialog', { class: 'modal' });
      var done = function (v) { d.close(); if (d.parentNode) d.parentNode.removeChild(d); resolve(v); };
      var form = h('form', { method: 'dialog', onsubmit: function (e) { e.preventDefault(); } },
        h('h3', null, title),
        h('div', { class: 'modal-body' }, body),
        h('div', { class: 'actions' }, buttons.map(function (b) {
          return h('button', { type: b.primary ? 'submit' : 'button', class: b.class || (b.primary ? 'primary' : ''),
            onclick: function (e) { e.preventDefault(); done(b.value); } }, b.label);
        })));
      d.appendChild(form);
      d.addEventListener('cancel', function (e) { e.preventDefault(); done(null); });
      document.body.appendChild(d);
      d.showModal();
      var f = d.querySelector('input, button.primary, button.danger');
      if (f) f.focus();
    });
  }

  function confirmDialog(title, message, okLabel, danger) {
    return dialog(title, h('p', null, message), [
      { label: t('common.cancel'), value: false },
      { label: okLabel || t('common.ok'), value: true, primary: true, class: danger ? 'danger' : 'primary' }
    ]).then(function (v) { return v === true; });
  }

  function promptDialog(title, label, type) {
    var input = h('input', { type: type || 'text', autocomplete: 'new-password' });
    return dialog(title, h('label', { class: 'field' }, h('span', null, label), input), [
      { label: t('common.cancel'), value: null },
      { label: t('common.ok'), value: 'ok', primary: true }
    ]).then(function (v) { return v === 'ok' ? input.value : null; });
  }

  // copyText copies s to the clipboard; the Clipboard API needs a secure
  // context (https or localhost), so plain http falls back to execCommand.
  function copyText(s) {
    var fallback = function () {
      var ta = h('textarea', { class: 'offscreen', readonly: true });
      ta.value = s;
      document.body.appendChild(ta);
      ta.select();
      var ok = false;
      try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
      document.body.removeChild(ta);
      return ok;
    };
    var report = function (ok) { toast(ok ? t('common.copied') : t('common.copyFailed'), ok ? 'ok' : 'error'); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(s).then(function () { report(true); }, function () { report(fallback()); });
    } else {
      report(fallback());
    }
  }

  function copyButton(text, label) {
    return h('button', { type: 'button', class: 'small', title: text, 'data-copy': text,
      onclick: function () { copyText(typeof text === 'function' ? text() : text); } }, label || t('common.copy'));
  }

  // ---- formatting ----

  function fmtBytes(n) {
    if (n === null || n === undefined || isNaN(n)) return '—';
    var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    var i = 0;
    n = Number(n);
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)) + ' ' + units[i];
  }

  function fmtTime(s) {
    if (!s || String(s).indexOf('0001-01-01') === 0) return '—';
    var d = new Date(s);
    if (isNaN(d.getTime())) return '—';
    return d.toLocaleString(state.lang, { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' });
  }

  function shortDigest(d) {
    if (!d) return '—';
    var i = d.indexOf(':');
    return i < 0 ? d.slice(0, 12) : d.slice(0, i + 13);
  }

  // ---- API ----

  function ApiError(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }
  ApiError.prototype = Object.create(Error.prototype);

  function safeMethod(m) { return m === 'GET' || m === 'HEAD' || m === 'OPTIONS'; }

  // api calls the management API; it resolves with the parsed JSON (null for
  // 204) and rejects with an ApiError. A 401 ends the session (the login page
  // is shown) unless opts.quiet401.
  function api(method, path, body, opts) {
    opts = opts || {};
    var headers = { 'Accept': 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (!safeMethod(method) && state.csrf) headers['X-CSRF-Token'] = state.csrf;
    if (opts.headers) Object.keys(opts.headers).forEach(function (k) { headers[k] = opts.headers[k]; });
    return fetch(path, {
      method: method, headers: headers, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      return readBody(r).then(function (data) {
        if (r.status === 401 && !opts.quiet401) sessionEnded(true);
        if (!r.ok) {
          var e = data && data.errors && data.errors[0];
          throw new ApiError(r.status, e ? e.code : '', e ? e.message : (r.status + ' ' + r.statusText));
        }
        return data;
      });
    }, function () {
      throw new ApiError(0, 'NETWORK', t('error.network'));
    });
  }

  function readBody(r) {
    if (r.status === 204) return Promise.resolve(null);
    var ct = r.headers.get('Content-Type') || '';
    if (ct.indexOf('json') >= 0) return r.json().catch(function () { return null; });
    return r.text().then(function () { return null; });
  }

  // has reports whether the server's API has the operation ("DELETE", "/api/v1/...{x}").
  function has(method, path) { return state.ops.has(method.toUpperCase() + ' ' + path); }

  function loadOps() {
    return fetch('/api/v1/openapi.json', { credentials: 'same-origin' })
      .then(function (r) { return r.ok ? r.json() : { paths: {} }; })
      .then(function (doc) {
        Object.keys(doc.paths || {}).forEach(function (p) {
          Object.keys(doc.paths[p]).forEach(function (m) {
            if (m !== 'parameters') state.ops.add(m.toUpperCase() + ' ' + p);
          });
        });
        state.openapi = doc;
      })
      .catch(function () { /* the console still works, without optional features */ });
  }

  function enc(s) { return encodeURIComponent(s); }
  // encPath encodes a repository name for a URL path, keeping its slashes.
  function encPath(s) { return String(s).split('/').map(enc).join('/'); }

  // ---- session ----

  function startSession(sess) {
    state.csrf = sess.csrfToken;
    state.lastRenew = Date.now();
    state.cache = {};
    return api('GET', '/api/v1/me').then(function (me) { state.me = me; });
  }

  function sessionEnded(expired) {
    var wasIn = !!state.me;
    state.me = null;
    state.csrf = '';
    state.cache = {};
    renderChrome();
    if (location.hash.indexOf('#/login') !== 0) {
      var back = location.hash && location.hash !== '#/' ? location.hash : '';
      state.afterLogin = back;
      location.hash = '#/login';
    }
    if (expired && wasIn) toast(t('login.expired'), 'error');
  }

  function renewIfActive() {
    if (!state.me) return;
    var now = Date.now();
    if (state.lastActivity > state.lastRenew && now - state.lastRenew >= RENEW_EVERY) {
      state.lastRenew = now;
      api('GET', '/api/v1/session', undefined, { quiet401: true }).then(function (s) {
        state.csrf = s.csrfToken;
      }, function (err) {
        if (err.status === 401) sessionEnded(true);
      });
    }
  }

  function logout() {
    api('DELETE', '/api/v1/session', undefined, { quiet401: true }).catch(function () { /* cleared anyway */ })
      .then(function () {
        state.me = null;
        state.csrf = '';
        state.cache = {};
        state.afterLogin = '';
        renderChrome();
        location.hash = '#/login';
      });
  }

  // ---- roles ----

  function roleIn(project) {
    var me = state.me;
    if (!me) return '';
    for (var i = 0; i < me.memberships.length; i++) {
      if (me.memberships[i].project === project) return me.memberships[i].role;
    }
    return '';
  }
  function isAdmin() { return !!(state.me && state.me.cloudAdmin); }
  function adminsProject(p) { return isAdmin() || roleIn(p) === 'project-admin'; }
  function editsProject(p) { var r = roleIn(p); return isAdmin() || r === 'project-admin' || r === 'developer'; }
  function adminsAnyProject() {
    return isAdmin() || (state.me && state.me.memberships.some(function (m) { return m.role === 'project-admin'; }));
  }

  // projects the caller may see (cached per session).
  function projects() {
    if (!state.cache.projects) {
      state.cache.projects = api('GET', '/api/v1/projects').then(function (r) { return r.items; });
      state.cache.projects.catch(function () { state.cache.projects = null; });
    }
    return state.cache.projects;
  }

  // pushableWorkspaces: the workspaces the caller may push to (own, developer and up).
  function pushableWorkspaces() {
    return api('GET', '/api/v1/workspaces?scope=' + (isAdmin() ? 'all' : 'own')).then(function (r) {
      return r.items.filter(function (w) { return editsProject(w.project); });
    });
  }

  // ---- chrome: top bar and navigation ----

  function navLink(href, label, id) {
    return h('a', { href: href, id: id, class: 'nav-link' }, label);
  }

  function renderChrome() {
    var bar = clear($('topbar'));
    var left = h('div', { class: 'left' },
      h('a', { href: '#/workspaces', class: 'brand' }, h('img', { src: '/console/favicon.svg', alt: '', width: 22, height: 22 }), t('app.name')));
    var nav = h('nav', { class: 'nav', 'aria-label': t('nav.label') });
    if (state.me) {
      nav.appendChild(navLink('#/workspaces', t('nav.workspaces'), 'nav-workspaces'));
      if (has('POST', '/api/v1/workspaces/{workspace}/import')) nav.appendChild(navLink('#/upload', t('nav.upload'), 'nav-upload'));
      nav.appendChild(navLink('#/push', t('nav.push'), 'nav-push'));
      if (adminsAnyProject()) {
        nav.appendChild(navLink('#/admin/projects', t('nav.projects'), 'nav-projects'));
        nav.appendChild(navLink('#/admin/robots', t('nav.robots'), 'nav-robots'));
      }
      if (isAdmin()) {
        nav.appendChild(navLink('#/admin/users', t('nav.users'), 'nav-users'));
        if (gcAPI()) nav.appendChild(navLink('#/admin/gc', t('nav.gc'), 'nav-gc'));
        nav.appendChild(navLink('#/admin/cluster', t('nav.cluster'), 'nav-cluster'));
      }
    }
    left.appendChild(nav);
    var langSel = h('select', { id: 'lang', 'aria-label': t('nav.language'), onchange: function () { switchLang(this.value); } },
      Object.keys(LANGS).map(function (l) { return h('option', { value: l, selected: l === state.lang }, LANGS[l]); }));
    var right = h('div', { class: 'right' }, langSel);
    if (state.me) {
      right.appendChild(h('span', { class: 'user', id: 'user-name', title: state.me.cloudAdmin ? t('role.cloud-admin') : '' },
        state.me.name, state.me.cloudAdmin ? h('span', { class: 'badge admin' }, t('role.cloud-admin')) : null));
      right.appendChild(h('button', { type: 'button', id: 'logout', class: 'small', onclick: logout }, t('nav.logout')));
    }
    bar.appendChild(left);
    bar.appendChild(right);
    markNav();
  }

  function markNav() {
    var path = location.hash.split('?')[0];
    document.querySelectorAll('.nav-link').forEach(function (a) {
      var href = a.getAttribute('href');
      var on = path === href || path.indexOf(href + '/') === 0 ||
        (href === '#/workspaces' && (path.indexOf('#/ws/') === 0 || path.indexOf('#/repo/') === 0));
      a.classList.toggle('active', on);
    });
  }

  function switchLang(lang) {
    try { localStorage.setItem('berth.lang', lang); } catch (e) { /* private mode */ }
    loadLang(lang).then(function () { renderChrome(); route(); });
  }

  // ---- router ----

  var routes = [
    [/^\/login$/, pageLogin, true],
    [/^\/workspaces$/, pageWorkspaces],
    [/^\/ws\/([^/]+)$/, pageWorkspace],
    [/^\/repo\/(.+)$/, pageRepository],
    [/^\/upload$/, pageUpload],
    [/^\/push$/, pagePush],
    [/^\/admin\/users$/, pageUsers],
    [/^\/admin\/projects$/, pageProjects],
    [/^\/admin\/projects\/([^/]+)$/, pageProject],
    [/^\/admin\/robots$/, pageRobots],
    [/^\/admin\/gc$/, pageGC],
    [/^\/admin\/cluster$/, pageCluster]
  ];

  function parseHash() {
    var raw = location.hash.replace(/^#/, '') || '/workspaces';
    var q = raw.indexOf('?');
    var path = q < 0 ? raw : raw.slice(0, q);
    var query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
    return { path: path, query: query };
  }

  // setQuery replaces the current hash's query without adding history.
  function setQuery(params) {
    var cur = parseHash();
    Object.keys(params).forEach(function (k) {
      if (params[k] === '' || params[k] === null || params[k] === undefined) cur.query.delete(k);
      else cur.query.set(k, params[k]);
    });
    var qs = cur.query.toString();
    history.replaceState(null, '', '#' + cur.path + (qs ? '?' + qs : ''));
  }

  function route() {
    var loc = parseHash();
    var main = clear($('main'));
    var seq = ++state.pageSeq;
    markNav();
    for (var i = 0; i < routes.length; i++) {
      var m = routes[i][0].exec(loc.path);
      if (!m) continue;
      if (!routes[i][2] && !state.me) { sessionEnded(false); return; }
      var ctx = {
        params: m.slice(1).map(function (x) { return decodeURIComponent(x); }),
        query: loc.query,
        main: main,
        alive: function () { return seq === state.pageSeq; }
      };
      try {
        var p = routes[i][1](ctx);
        if (p && p.catch) p.catch(function (err) { if (ctx.alive()) main.appendChild(errorBox(err)); });
      } catch (err) {
        main.appendChild(errorBox(err));
      }
      return;
    }
    document.title = t('app.name');
    main.appendChild(h('div', { class: 'empty' }, t('error.nopage')));
  }

  function pageHeader(title, sub, actions) {
    document.title = title + ' · ' + t('app.name');
    return h('div', { class: 'page-header' },
      h('div', null, h('h1', null, title), sub ? h('div', { class: 'sub' }, sub) : null),
      actions ? h('div', { class: 'actions' }, actions) : null);
  }

  function loading() { return h('div', { class: 'loading' }, t('common.loading')); }

  function badge(text, kind) { return h('span', { class: 'badge ' + (kind || '') }, text); }

  function visBadge(v) { return badge(t('vis.' + v), v === 'public' ? 'public' : 'private'); }

  function table(headers, rows, opts) {
    opts = opts || {};
    return h('table', { class: 'grid' + (opts.class ? ' ' + opts.class : ''), id: opts.id },
      h('thead', null, h('tr', null, headers.map(function (x) { return h('th', null, x); }))),
      h('tbody', null, rows.length ? rows : h('tr', null, h('td', { colspan: headers.length, class: 'empty' }, opts.empty || t('common.none')))));
  }

  function field(label, input, hint) {
    return h('label', { class: 'field' }, h('span', null, label), input, hint ? h('small', null, hint) : null);
  }

  function busy(btn, p) {
    btn.disabled = true;
    return p.then(function (v) { btn.disabled = false; return v; }, function (e) { btn.disabled = false; throw e; });
  }

  // ---- login ----

  function pageLogin(ctx) {
    if (state.me) { location.hash = state.afterLogin || '#/workspaces'; return; }
    document.title = t('login.title') + ' · ' + t('app.name');
    var user = h('input', { id: 'login-user', name: 'username', autocomplete: 'username', required: true, autofocus: true });
    var pass = h('input', { id: 'login-pass', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
    var msg = h('div', { class: 'form-msg', role: 'alert' });
    var btn = h('button', { type: 'submit', class: 'primary', id: 'login-submit' }, t('login.submit'));
    var form = h('form', { class: 'card login', id: 'login-form', onsubmit: function (e) {
      e.preventDefault();
      clear(msg);
      busy(btn, api('POST', '/api/v1/session', { username: user.value.trim(), password: pass.value }, { quiet401: true }))
        .then(startSession)
        .then(function () {
          var next = state.afterLogin || '#/workspaces';
          state.afterLogin = '';
          renderChrome();
          if (location.hash === next) route(); else location.hash = next;
        })
        .catch(function (err) {
          pass.value = '';
          msg.appendChild(h('div', { class: 'alert error' },
            err.status === 401 ? t('login.failed') : err.status === 429 ? t('login.tooMany') : errText(err)));
        });
    } },
    h('h1', null, t('login.title')),
    h('p', { class: 'sub' }, t('login.intro')),
    field(t('login.username'), user),
    field(t('login.password'), pass),
    msg,
    h('div', { class: 'actions' }, btn));
    ctx.main.appendChild(h('div', { class: 'login-wrap' }, form));
    user.focus();
  }

  // ---- workspaces ----

  function pageWorkspaces(ctx) {
    var tab = ctx.query.get('tab') || 'own';
    var tabs = ['own', 'shared'];
    if (isAdmin()) tabs.push('all');
    if (tabs.indexOf(tab) < 0) tab = 'own';
    var actions = [];
    if (adminsAnyProject()) {
      actions.push(h('button', { type: 'button', class: 'primary', id: 'ws-create-open', onclick: function () { createForm.hidden = !createForm.hidden; } }, t('ws.create')));
    }
    ctx.main.appendChild(pageHeader(t('ws.title'), t('ws.intro'), actions));
    var createForm = workspaceCreateForm(function () { route(); });
    createForm.hidden = true;
    ctx.main.appendChild(createForm);
    ctx.main.appendChild(h('div', { class: 'tabs', role: 'tablist' }, tabs.map(function (x) {
      return h('a', { href: '#/workspaces?tab=' + x, class: 'tab' + (x === tab ? ' active' : ''), role: 'tab', id: 'ws-tab-' + x }, t('ws.tab.' + x));
    })));
    var holder = h('div', null, loading());
    ctx.main.appendChild(holder);
    return api('GET', '/api/v1/workspaces?scope=' + tab).then(function (r) {
      if (!ctx.alive()) return;
      var withSize = r.items.some(function (w) { return w.size !== undefined; });
      var heads = [t('ws.col.name'), t('ws.col.project'), t('ws.col.visibility'), t('ws.col.description'), t('ws.col.repositories')];
      if (withSize) heads.push(t('ws.col.size'));
      heads.push(t('ws.col.created'), '');
      var rows = r.items.map(function (w) {
        var cells = [
          h('td', null, h('a', { href: '#/ws/' + enc(w.name), class: 'strong' }, w.name)),
          h('td', null, w.project),
          h('td', null, visBadge(w.visibility)),
          h('td', { class: 'desc' }, w.description || ''),
          h('td', { class: 'num' }, String(w.repositories))
        ];
        if (withSize) cells.push(h('td', { class: 'num' }, fmtBytes(w.size)));
        cells.push(h('td', null, fmtTime(w.created)));
        cells.push(h('td', { class: 'row-actions' }, workspaceActions(w)));
        return h('tr', { 'data-ws': w.name }, cells);
      });
      clear(holder).appendChild(table(heads, rows, { id: 'ws-table', empty: t('ws.none.' + tab) }));
    });
  }

  function workspaceActions(w) {
    var out = [];
    if (editsProject(w.project)) {
      out.push(h('a', { href: '#/push?ws=' + enc(w.name), class: 'button small' }, t('ws.push')));
      if (has('POST', '/api/v1/workspaces/{workspace}/import')) out.push(h('a', { href: '#/upload?ws=' + enc(w.name), class: 'button small' }, t('ws.upload')));
    }
    if (adminsProject(w.project)) {
      var other = w.visibility === 'public' ? 'private' : 'public';
      out.push(h('button', { type: 'button', class: 'small', 'data-action': 'visibility', onclick: function () {
        confirmDialog(t('ws.visibility.title'), t('ws.visibility.confirm.' + other, { name: w.name }), t('ws.visibility.make.' + other)).then(function (ok) {
          if (!ok) return;
          api('PATCH', '/api/v1/workspaces/' + enc(w.name), { visibility: other }).then(function () {
            toast(t('ws.visibility.done', { name: w.name, visibility: t('vis.' + other) }));
            route();
          }, function (e) { toast(errText(e), 'error'); });
        });
      } }, t('ws.visibility.make.' + other)));
      out.push(h('button', { type: 'button', class: 'small danger', 'data-action': 'delete', onclick: function () {
        confirmDialog(t('ws.delete.title'), t(trashAPI() ? 'ws.delete.confirmTrash' : 'ws.delete.confirm', { name: w.name }), t('common.delete'), true).then(function (ok) {
          if (!ok) return;
          api('DELETE', '/api/v1/workspaces/' + enc(w.name)).then(function () {
            if (trashAPI()) {
              toast(t('ws.delete.doneTrash', { name: w.name }), 'ok', { label: t('trash.restore'), id: 'undo-ws-delete', fn: function () {
                restoreItem(w.name, { id: 'workspace:' + w.name, kind: 'workspace' }).then(route, function (e) { toast(errText(e), 'error'); });
              } });
            } else {
              toast(t('ws.delete.done', { name: w.name }));
            }
            route();
          }, function (e) { toast(errText(e), 'error'); });
        });
      } }, t('common.delete')));
    }
    return out;
  }

  function workspaceCreateForm(onDone) {
    var proj = h('select', { id: 'ws-create-project', required: true });
    var name = h('input', { id: 'ws-create-name', required: true, pattern: '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*', maxlength: 64, placeholder: 'team-app' });
    var vis = h('select', { id: 'ws-create-visibility' },
      h('option', { value: 'private' }, t('vis.private')), h('option', { value: 'public' }, t('vis.public')));
    var desc = h('input', { id: 'ws-create-description', maxlength: 500 });
    var msg = h('div', { class: 'form-msg' });
    var btn = h('button', { type: 'submit', class: 'primary', id: 'ws-create-submit' }, t('common.create'));
    projects().then(function (ps) {
      ps.filter(function (p) { return adminsProject(p.name); }).forEach(function (p) {
        proj.appendChild(h('option', { value: p.name }, p.name));
      });
    }, function (e) { msg.appendChild(errorBox(e)); });
    return h('form', { class: 'card form-grid', id: 'ws-create-form', onsubmit: function (e) {
      e.preventDefault();
      clear(msg);
      busy(btn, api('POST', '/api/v1/projects/' + enc(proj.value) + '/workspaces',
        { name: name.value.trim(), visibility: vis.value, description: desc.value }))
        .then(function (w) {
          toast(t('ws.create.done', { name: w.name }));
          state.cache.projects = null;
          onDone(w);
        }, function (err) { msg.appendChild(errorBox(err)); });
    } },
    h('h3', null, t('ws.create')),
    field(t('ws.col.project'), proj),
    field(t('ws.col.name'), name, t('ws.create.nameHint')),
    field(t('ws.col.visibility'), vis),
    field(t('ws.col.description'), desc),
    msg,
    h('div', { class: 'actions' }, btn));
  }

  // ---- one workspace: its repositories, paged and searched on the server ----

  function pageWorkspace(ctx) {
    var wsName = ctx.params[0];
    var q = ctx.query.get('q') || '';
    var cursors = ['']; // the "last" of each page seen; the current page is the last entry
    var header = h('div', null, loading());
    ctx.main.appendChild(header);
    var search = h('input', { type: 'search', id: 'repo-search', placeholder: t('repo.search'), value: q, 'aria-label': t('repo.search') });
    var info = h('span', { class: 'muted', id: 'repo-page-info' });
    var prev = h('button', { type: 'button', class: 'small', id: 'repo-prev', disabled: true }, t('common.prev'));
    var next = h('button', { type: 'button', class: 'small', id: 'repo-next', disabled: true }, t('common.next'));
    var holder = h('div', null);
    var trashBox = h('div', null);
    ctx.main.appendChild(h('div', { class: 'toolbar' }, search, h('div', { class: 'pager' }, info, prev, next)));
    ctx.main.appendChild(holder);
    ctx.main.appendChild(trashBox);
    var ws = null;
    var seq = 0;

    function load() {
      var my = ++seq;
      var last = cursors[cursors.length - 1];
      var started = performance.now();
      holder.classList.add('stale');
      return api('GET', '/api/v1/workspaces/' + enc(wsName) + '/repositories?n=' + PAGE +
        (q ? '&q=' + enc(q) : '') + (last ? '&last=' + enc(last) : '')).then(function (r) {
        if (!ctx.alive() || my !== seq) return;
        holder.classList.remove('stale');
        renderRepos(r.items);
        var from = (cursors.length - 1) * PAGE + 1;
        info.textContent = r.items.length ? t('common.range', { from: from, to: from + r.items.length - 1 }) : '';
        info.title = Math.round(performance.now() - started) + ' ms';
        prev.disabled = cursors.length <= 1;
        next.disabled = !r.next;
        next.onclick = function () { cursors.push(r.next); load(); };
      }, function (err) {
        holder.classList.remove('stale');
        clear(holder).appendChild(errorBox(err));
      });
    }
    prev.onclick = function () { if (cursors.length > 1) { cursors.pop(); load(); } };

    var timer = null;
    search.addEventListener('input', function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        q = search.value.trim().toLowerCase();
        cursors = [''];
        setQuery({ q: q });
        load();
      }, 250);
    });

    function renderRepos(items) {
      var withSize = items.some(function (x) { return x.size !== undefined; });
      var withPush = items.some(function (x) { return x.pushed !== undefined; });
      var heads = [t('repo.col.name'), t('repo.col.description'), t('repo.col.tags')];
      if (withSize) heads.push(t('repo.col.size'));
      heads.push(withPush ? t('repo.col.pushed') : t('repo.col.created'));
      var rows = items.map(function (x) {
        var cells = [
          h('td', null, h('a', { href: '#/repo/' + encPath(x.name), class: 'strong' }, x.name.slice(wsName.length + 1))),
          h('td', { class: 'desc' }, descriptionEditor(x, ws && editsProject(ws.project))),
          h('td', { class: 'num' }, String(x.tags))
        ];
        if (withSize) cells.push(h('td', { class: 'num' }, fmtBytes(x.size)));
        cells.push(h('td', null, fmtTime(withPush ? x.pushed : x.created)));
        return h('tr', { 'data-repo': x.name }, cells);
      });
      clear(holder).appendChild(table(heads, rows, { id: 'repo-table', empty: q ? t('repo.none.search') : t('repo.none') }));
    }

    return api('GET', '/api/v1/workspaces/' + enc(wsName)).then(function (w) {
      if (!ctx.alive()) return;
      ws = w;
      var actions = [];
      if (editsProject(w.project)) {
        actions.push(h('a', { href: '#/push?ws=' + enc(w.name), class: 'button' }, t('ws.push')));
        if (has('POST', '/api/v1/workspaces/{workspace}/import')) actions.push(h('a', { href: '#/upload?ws=' + enc(w.name), class: 'button primary' }, t('ws.upload')));
      }
      clear(header).appendChild(pageHeader(w.name, [
        h('a', { href: '#/workspaces' }, t('nav.workspaces')), ' · ', t('ws.col.project'), ': ', w.project, ' · ',
        visBadge(w.visibility), ' · ', t('ws.repoCount', { n: w.repositories }),
        w.description ? h('div', { class: 'muted' }, w.description) : null
      ], actions));
      if (trashAPI() && editsProject(w.project)) trashBox.appendChild(trashSection({ workspace: w.name, onRestore: function () { load(); } }));
      return load();
    });
  }

  // descriptionEditor shows a repository's description, editable in place.
  function descriptionEditor(repo, editable) {
    var box = h('span', { class: 'desc-edit' });
    function show() {
      clear(box);
      box.appendChild(h('span', { class: 'desc-text' + (repo.description ? '' : ' muted') }, repo.description || (editable ? t('repo.desc.none') : '')));
      if (editable) {
        box.appendChild(h('button', { type: 'button', class: 'icon', title: t('repo.desc.edit'), 'aria-label': t('repo.desc.edit'), 'data-action': 'edit-desc', onclick: edit }, '✎'));
      }
    }
    function edit() {
      clear(box);
      var input = h('input', { class: 'desc-input', value: repo.description || '', maxlength: 1000 });
      var save = h('button', { type: 'submit', class: 'small primary' }, t('common.save'));
      var cancel = h('button', { type: 'button', class: 'small', onclick: show }, t('common.cancel'));
      box.appendChild(h('form', { class: 'inline', onsubmit: function (e) {
        e.preventDefault();
        busy(save, api('PATCH', '/api/v1/repositories/' + encPath(repo.name), { description: input.value })).then(function (r) {
          repo.description = r.description;
          show();
          toast(t('repo.desc.saved'));
        }, function (err) { toast(errText(err), 'error'); });
      } }, input, save, cancel));
      input.addEventListener('keydown', function (e) { if (e.key === 'Escape') show(); });
      input.focus();
      input.select();
    }
    show();
    return box;
  }

  // ---- one repository: its tags ----

  var INDEX_TYPES = ['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json'];
  var CONFIG_TYPES = ['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json'];
  var MANIFEST_ACCEPT = INDEX_TYPES.concat(['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json']).join(', ');
  var platformCache = new Map();

  // platformsOf reads the platforms of a manifest through /v2/ (the session
  // cookie authenticates there too): an index's entries, or an image's config.
  function platformsOf(repo, digest) {
    var key = repo + '@' + digest;
    if (platformCache.has(key)) return platformCache.get(key);
    var get = function (kind, d, accept) {
      return fetch('/v2/' + encPath(repo) + '/' + kind + '/' + enc(d), { credentials: 'same-origin', headers: { 'Accept': accept } })
        .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); });
    };
    var p = get('manifests', digest, MANIFEST_ACCEPT).then(function (m) {
      if (Array.isArray(m.manifests)) {
        return m.manifests.map(function (x) { return x.platform; }).filter(function (pl) {
          return pl && pl.os && pl.os !== 'unknown';
        }).map(platformString);
      }
      if (m.config && CONFIG_TYPES.indexOf(m.config.mediaType) >= 0 && m.config.size < (1 << 20)) {
        return get('blobs', m.config.digest, '*/*').then(function (c) { return c.os ? [platformString({ os: c.os, architecture: c.architecture, variant: c.variant })] : []; });
      }
      return [];
    }).catch(function () { return null; });
    platformCache.set(key, p);
    return p;
  }

  function platformString(p) { return p.os + '/' + p.architecture + (p.variant ? '/' + p.variant : ''); }

  // limit runs the async fns at most n at a time.
  function limit(n, fns) {
    var i = 0;
    var worker = function () { if (i >= fns.length) return Promise.resolve(); var f = fns[i++]; return f().then(worker, worker); };
    var ws = [];
    for (var k = 0; k < n; k++) ws.push(worker());
    return Promise.all(ws);
  }

  function pullCommand(repo, ref) {
    return 'docker pull ' + location.host + '/' + repo + (ref.indexOf(':') > 0 && ref.indexOf('sha256') === 0 ? '@' + ref : ':' + ref);
  }

  function pageRepository(ctx) {
    var name = ctx.params[0];
    var wsName = name.split('/')[0];
    var cursors = [''];
    var header = h('div', null, loading());
    var holder = h('div', null);
    var prev = h('button', { type: 'button', class: 'small', id: 'tag-prev', disabled: true }, t('common.prev'));
    var next = h('button', { type: 'button', class: 'small', id: 'tag-next', disabled: true }, t('common.next'));
    var trashBox = h('div', null);
    ctx.main.appendChild(header);
    ctx.main.appendChild(h('div', { class: 'toolbar' }, h('h2', null, t('tag.title')), h('div', { class: 'pager' }, prev, next)));
    ctx.main.appendChild(holder);
    ctx.main.appendChild(trashBox);
    var repo = null;

    function load() {
      var last = cursors[cursors.length - 1];
      holder.classList.add('stale');
      return api('GET', '/api/v1/repositories/' + encPath(name) + '/tags?n=' + PAGE + (last ? '&last=' + enc(last) : '')).then(function (r) {
        if (!ctx.alive()) return;
        holder.classList.remove('stale');
        renderTags(r.items);
        prev.disabled = cursors.length <= 1;
        next.disabled = !r.next;
        next.onclick = function () { cursors.push(r.next); load(); };
      }, function (err) { holder.classList.remove('stale'); clear(holder).appendChild(errorBox(err)); });
    }
    prev.onclick = function () { if (cursors.length > 1) { cursors.pop(); load(); } };

    function renderTags(items) {
      var canDelete = repo && editsProject(repo.project);
      var jobs = [];
      var rows = items.map(function (tg) {
        var plat = h('td', { class: 'platforms muted' }, '…');
        jobs.push(function () {
          return platformsOf(name, tg.digest).then(function (ps) {
            plat.classList.remove('muted');
            plat.textContent = ps === null ? '—' : ps.length ? ps.join(', ') : '—';
          });
        });
        var acts = [copyButton(pullCommand(name, tg.name), t('tag.copyPull'))];
        if (canDelete) {
          acts.push(h('button', { type: 'button', class: 'small danger', 'data-action': 'delete-tag', onclick: function () {
            confirmDialog(t('tag.delete.title'), t(trashAPI() ? 'tag.delete.confirmTrash' : 'tag.delete.confirm', { tag: tg.name, repo: name }), t('common.delete'), true).then(function (ok) {
              if (!ok) return;
              deleteTag(name, tg.name).then(function () {
                toast(t('tag.delete.done', { tag: tg.name }));
                load();
                refreshTrash();
              }, function (e) { toast(errText(e), 'error'); });
            });
          } }, t('common.delete')));
        }
        return h('tr', { 'data-tag': tg.name },
          h('td', null, h('span', { class: 'strong' }, tg.name)),
          h('td', { class: 'mono', title: tg.digest }, shortDigest(tg.digest)),
          h('td', { class: 'num' }, fmtBytes(tg.size)),
          plat,
          h('td', null, fmtTime(tg.pushed)),
          tg.pushedBy !== undefined ? h('td', null, tg.pushedBy || '—') : null,
          h('td', { class: 'row-actions' }, acts));
      });
      var heads = [t('tag.col.tag'), t('tag.col.digest'), t('tag.col.size'), t('tag.col.platforms'), t('tag.col.pushed')];
      if (items.some(function (x) { return x.pushedBy !== undefined; })) heads.push(t('tag.col.pushedBy'));
      heads.push('');
      clear(holder).appendChild(table(heads, rows, { id: 'tag-table', empty: t('tag.none') }));
      limit(4, jobs);
    }

    var refreshTrash = function () {};

    return api('GET', '/api/v1/repositories/' + encPath(name)).then(function (r) {
      if (!ctx.alive()) return;
      repo = r;
      var actions = [copyButton(pullCommand(name, 'latest'), t('tag.copyPullLatest'))];
      if (repoDeleteAPI() && editsProject(r.project)) {
        actions.push(h('button', { type: 'button', class: 'danger', id: 'repo-delete', onclick: function () {
          confirmDialog(t('repo.delete.title'), t(trashAPI() ? 'repo.delete.confirmTrash' : 'repo.delete.confirm', { repo: name }), t('common.delete'), true).then(function (ok) {
            if (!ok) return;
            api('DELETE', '/api/v1/repositories/' + encPath(name)).then(function () {
              toast(t('repo.delete.done', { repo: name }));
              location.hash = '#/ws/' + enc(wsName);
            }, function (e) { toast(errText(e), 'error'); });
          });
        } }, t('repo.delete')));
      }
      clear(header).appendChild(pageHeader(name.slice(wsName.length + 1), [
        h('a', { href: '#/workspaces' }, t('nav.workspaces')), ' / ',
        h('a', { href: '#/ws/' + enc(wsName) }, wsName), ' · ', visBadge(r.visibility), ' · ', t('repo.tagCount', { n: r.tags })
      ], actions));
      header.appendChild(h('div', { class: 'card desc-card' }, h('span', { class: 'label' }, t('repo.col.description')), descriptionEditor(r, editsProject(r.project))));
      if (trashAPI() && editsProject(r.project)) {
        var sec = trashSection({ workspace: wsName, repository: name, onRestore: function () { load(); } });
        trashBox.appendChild(sec);
        refreshTrash = sec.refresh;
      }
      return load();
    });
  }

  // ---- optional APIs: trash, repository delete, garbage collection ----
  //
  // They are detected in the server's OpenAPI document; the console offers
  // what the server has and nothing else.

  function trashAPI() { return has('GET', '/api/v1/workspaces/{workspace}/trash'); }
  function repoDeleteAPI() { return has('DELETE', '/api/v1/repositories/{name}'); }
  function gcAPI() { return has('POST', '/api/v1/gc'); }

  // deleteTag deletes one tag: the management API's route when the server
  // has it, else the registry API's DELETE of the tag (the same soft delete).
  function deleteTag(repo, tag) {
    if (has('DELETE', '/api/v1/repositories/{name}/tags/{tag}')) {
      return api('DELETE', '/api/v1/repositories/' + encPath(repo) + '/tags/' + enc(tag));
    }
    return api('DELETE', '/v2/' + encPath(repo) + '/manifests/' + enc(tag));
  }

  // trashSection lists what was deleted from a workspace (or one repository
  // of it) and not yet reclaimed by garbage collection, with restore
  // (GET /api/v1/workspaces/{ws}/trash, POST .../trash/restore {"id"}).
  function trashSection(opts) {
    var list = h('div', null, loading());
    var sec = h('section', { class: 'trash', id: 'trash' }, h('h2', null, t('trash.title')), h('p', { class: 'muted' }, t('trash.intro')), list);
    function refresh() {
      return api('GET', '/api/v1/workspaces/' + enc(opts.workspace) + '/trash').then(function (r) {
        var items = (r.items || []).filter(function (x) {
          return x.kind !== 'workspace' && (!opts.repository || x.repository === opts.repository);
        });
        var rows = items.map(function (x) {
          return h('tr', { 'data-trash': x.id },
            h('td', null, t('trash.kind.' + x.kind)),
            h('td', null, x.repository ? x.repository.slice(opts.workspace.length + 1) : '—'),
            h('td', null, x.tag || (x.tags && x.tags.length ? x.tags.join(', ') : '—')),
            h('td', { class: 'mono', title: x.digest || '' }, x.digest ? shortDigest(x.digest) : '—'),
            h('td', null, fmtTime(x.deleted)),
            h('td', null, x.deletedBy || '—'),
            h('td', { class: 'row-actions' }, h('button', { type: 'button', class: 'small', 'data-action': 'restore', onclick: function () {
              restoreItem(opts.workspace, x).then(function () {
                refresh();
                if (opts.onRestore) opts.onRestore();
              }, function (e) { toast(errText(e), 'error'); });
            } }, t('trash.restore'))));
        });
        clear(list).appendChild(table([t('trash.col.kind'), t('trash.col.repository'), t('trash.col.tag'), t('trash.col.digest'), t('trash.col.deleted'), t('trash.col.by'), ''], rows, { id: 'trash-table', empty: t('trash.empty') }));
      }, function (err) { clear(list).appendChild(errorBox(err)); });
    }
    sec.refresh = refresh;
    refresh();
    return sec;
  }

  function restoreItem(ws, item) {
    return api('POST', '/api/v1/workspaces/' + enc(ws) + '/trash/restore', { id: item.id }).then(function () {
      var name = item.kind === 'workspace' ? ws : (item.repository || '') + (item.tag ? ':' + item.tag : '');
      toast(t('trash.restored', { name: name }));
    });
  }

  // ---- upload an image archive ----

  function pageUpload(ctx) {
    ctx.main.appendChild(pageHeader(t('upload.title'), t('upload.intro')));
    if (!has('POST', '/api/v1/workspaces/{workspace}/import')) {
      ctx.main.appendChild(h('div', { class: 'alert' }, t('upload.unavailable')));
      return;
    }
    var wsSel = h('select', { id: 'upload-ws', required: true });
    var repo = h('input', { id: 'upload-repo', placeholder: t('upload.repo.placeholder') });
    var tag = h('input', { id: 'upload-tag', placeholder: t('upload.tag.placeholder') });
    var file = h('input', { id: 'upload-file', type: 'file', accept: '.tar,.tar.gz,.tgz,application/x-tar,application/gzip', required: true });
    var msg = h('div', { class: 'form-msg', id: 'upload-msg' });
    var btn = h('button', { type: 'submit', class: 'primary', id: 'upload-submit' }, t('upload.submit'));
    var progress = h('div', { class: 'progress-box', id: 'upload-progress', hidden: true });
    var result = h('div', { id: 'upload-result' });
    var form = h('form', { class: 'card form-grid', id: 'upload-form', onsubmit: function (e) {
      e.preventDefault();
      clear(msg);
      clear(result);
      var f = file.files && file.files[0];
      if (!f) { msg.appendChild(h('div', { class: 'alert error' }, t('upload.nofile'))); return; }
      if (!/\.(tar|tar\.gz|tgz)$/i.test(f.name)) { msg.appendChild(h('div', { class: 'alert error' }, t('upload.badtype'))); return; }
      if (f.size > MAX_UPLOAD) {
        msg.appendChild(h('div', { class: 'alert error', id: 'upload-too-big' }, t('upload.tooBig', { size: fmtBytes(f.size), max: fmtBytes(MAX_UPLOAD) })));
        return;
      }
      btn.disabled = true;
      runImport(wsSel.value, repo.value.trim(), tag.value.trim(), f, progress).then(function (res) {
        btn.disabled = false;
        showImportResult(result, wsSel.value, res);
      }, function (err) {
        btn.disabled = false;
        msg.appendChild(errorBox(err));
      });
    } },
    field(t('upload.ws'), wsSel),
    field(t('upload.repo'), repo, t('upload.repo.hint')),
    field(t('upload.tag'), tag, t('upload.tag.hint')),
    field(t('upload.file'), file, t('upload.file.hint', { max: fmtBytes(MAX_UPLOAD) })),
    msg,
    h('div', { class: 'actions' }, btn));
    file.addEventListener('change', function () {
      clear(msg);
      var f = file.files && file.files[0];
      if (f && f.size > MAX_UPLOAD) {
        msg.appendChild(h('div', { class: 'alert error', id: 'upload-too-big' }, t('upload.tooBig', { size: fmtBytes(f.size), max: fmtBytes(MAX_UPLOAD) })));
      }
    });
    ctx.main.appendChild(form);
    ctx.main.appendChild(progress);
    ctx.main.appendChild(result);
    return pushableWorkspaces().then(function (wss) {
      if (!ctx.alive()) return;
      var want = ctx.query.get('ws');
      wss.forEach(function (w) { wsSel.appendChild(h('option', { value: w.name, selected: w.name === want }, w.name + ' (' + w.project + ')')); });
      if (!wss.length) msg.appendChild(h('div', { class: 'alert' }, t('upload.noWorkspace')));
    });
  }

  function progressBar(box, id, label) {
    var bar = h('div', { class: 'bar-fill' });
    var text = h('span', { class: 'bar-text' }, '');
    var row = h('div', { class: 'progress', id: id },
      h('div', { class: 'progress-label' }, h('span', null, label), text),
      h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 }, bar));
    box.appendChild(row);
    return {
      set: function (frac, note) {
        var pct = Math.max(0, Math.min(100, Math.round(frac * 100)));
        bar.style.width = pct + '%';
        row.querySelector('.bar').setAttribute('aria-valuenow', pct);
        text.textContent = note !== undefined ? note : pct + '%';
      },
      indeterminate: function (on, note) {
        row.classList.toggle('indeterminate', on);
        if (note !== undefined) text.textContent = note;
      },
      done: function (note) { row.classList.remove('indeterminate'); bar.style.width = '100%'; row.classList.add('complete'); text.textContent = note || '100%'; }
    };
  }

  // runImport sends the archive with XMLHttpRequest (fetch has no upload
  // progress) as the "file" part of a form, and follows the import through the
  // server's progress stream (Accept: application/x-ndjson; see
  // api/mgmt_import.go): lines {"phase":"upload"|"import","bytes","total"},
  // then {"phase":"done","result"} or {"phase":"error","status","error"}. It
  // resolves with the result.
  function runImport(ws, repo, tag, file, box) {
    clear(box);
    box.hidden = false;
    box.classList.remove('failed');
    var up = progressBar(box, 'progress-upload', t('upload.phase.upload'));
    var imp = progressBar(box, 'progress-import', t('upload.phase.import'));
    up.set(0);
    imp.set(0, t('upload.waiting'));
    var form = new FormData();
    // The fields go before the file: the server reads the form as a stream.
    if (repo) form.append('repository', repo);
    if (tag) form.append('tag', tag);
    form.append('file', file, file.name);
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      var seen = 0;      // characters of the response already parsed
      var result = null; // the result of the final line
      var failure = null;
      var started = Date.now();
      var importing = false;
      xhr.open('POST', '/api/v1/workspaces/' + enc(ws) + '/import');
      xhr.setRequestHeader('Accept', 'application/x-ndjson');
      xhr.setRequestHeader('X-CSRF-Token', state.csrf);
      xhr.upload.onprogress = function (e) {
        if (!e.lengthComputable) return;
        var secs = Math.max(0.001, (Date.now() - started) / 1000);
        up.set(e.loaded / e.total, fmtBytes(e.loaded) + ' / ' + fmtBytes(e.total) + ' · ' + fmtBytes(e.loaded / secs) + '/s');
      };
      xhr.upload.onload = function () {
        up.done();
        if (!importing) imp.indeterminate(true, t('upload.importing'));
      };
      xhr.onprogress = function () { parse(false); };
      xhr.onload = function () {
        parse(true);
        if (failure || xhr.status >= 400 || (!result && xhr.status !== 201)) {
          var e = failure || errorOf(xhr);
          imp.indeterminate(false, t('upload.failed'));
          box.classList.add('failed');
          reject(e);
          return;
        }
        imp.done(t('upload.done'));
        resolve(result);
      };
      xhr.onerror = function () { box.classList.add('failed'); reject(new ApiError(0, 'NETWORK', t('error.network'))); };
      xhr.onabort = function () { reject(new ApiError(0, 'ABORTED', t('upload.aborted'))); };
      xhr.send(form);

      function parse(final) {
        var ct = xhr.getResponseHeader('Content-Type') || '';
        if (ct.indexOf('application/x-ndjson') < 0) {
          // A refusal before the import began (401, 403, 413, ...), or a
          // server that answered without a stream (201 and the result).
          if (final && xhr.status === 201) {
            try { result = JSON.parse(xhr.responseText); } catch (e) { result = null; }
          }
          return;
        }
        var text = xhr.responseText;
        var end = final ? text.length : text.lastIndexOf('\n') + 1;
        if (end <= seen) return;
        text.slice(seen, end).split('\n').forEach(function (line) {
          line = line.trim();
          if (!line) return;
          try { handle(JSON.parse(line)); } catch (e) { /* a torn line; the next one follows */ }
        });
        seen = end;
      }

      function handle(ev) {
        var total = typeof ev.total === 'number' ? ev.total : 0;
        switch (ev.phase) {
          case 'upload':
            // The server's count of what it read; the browser's own upload
            // events drive the bar, this only fills it when they are missing.
            if (total && ev.bytes >= total) up.done();
            break;
          case 'import':
            importing = true;
            up.done();
            if (total) {
              imp.indeterminate(false);
              imp.set(ev.bytes / total, fmtBytes(ev.bytes) + ' / ' + fmtBytes(total));
            } else {
              imp.indeterminate(true, t('upload.importing'));
            }
            break;
          case 'done':
            result = ev.result || { images: [] };
            break;
          case 'error':
            var e = ev.error || {};
            failure = new ApiError(ev.status || 400, e.code || '', e.message || t('upload.failed'));
            if (ev.status === 413) failure.message = t('upload.tooBigServer') + ' (' + failure.message + ')';
            break;
        }
      }
    });
  }

  function errorOf(xhr) {
    var code = '';
    var msg = xhr.status + ' ' + xhr.statusText;
    try {
      var body = JSON.parse(xhr.responseText);
      var e = body.errors && body.errors[0];
      if (e) { code = e.code; msg = e.message; }
    } catch (err) { /* not JSON */ }
    if (xhr.status === 413) msg = t('upload.tooBigServer') + ' (' + msg + ')';
    if (xhr.status === 401) sessionEnded(true);
    return new ApiError(xhr.status, code, msg);
  }

  function showImportResult(box, ws, res) {
    var rows = (res.images || []).map(function (im) {
      var plats = (im.manifests || []).map(function (c) { return c.platform ? platformString(c.platform) : ''; }).filter(Boolean);
      return h('tr', { 'data-image': im.repository + ':' + im.tag },
        h('td', null, h('a', { href: '#/repo/' + encPath(im.repository) }, im.repository)),
        h('td', null, h('span', { class: 'strong' }, im.tag)),
        h('td', { class: 'mono', title: im.digest }, shortDigest(im.digest)),
        h('td', { class: 'num' }, fmtBytes(im.size)),
        h('td', null, plats.join(', ') || (im.layers ? t('upload.result.layers', { n: im.layers.length }) : '—')),
        h('td', { class: 'row-actions' }, copyButton(pullCommand(im.repository, im.tag), t('tag.copyPull'))));
    });
    clear(box).appendChild(h('section', { class: 'card', id: 'import-result' },
      h('h2', null, t('upload.result')),
      table([t('trash.col.repository'), t('tag.col.tag'), t('tag.col.digest'), t('tag.col.size'), t('upload.result.content'), ''], rows, { id: 'import-table', empty: t('upload.result.none') }),
      h('p', null, h('a', { href: '#/ws/' + enc(ws), id: 'import-open-ws' }, t('upload.result.open', { ws: ws })))));
  }

  // ---- push guide ----

  function pagePush(ctx) {
    ctx.main.appendChild(pageHeader(t('push.title'), t('push.intro')));
    var wsSel = h('select', { id: 'push-ws' });
    var repoIn = h('input', { id: 'push-repo', value: ctx.query.get('repo') || 'myapp' });
    var tagIn = h('input', { id: 'push-tag', value: 'latest' });
    var out = h('div', { id: 'push-commands' });
    ctx.main.appendChild(h('div', { class: 'card form-grid three' },
      field(t('push.ws'), wsSel), field(t('push.repo'), repoIn), field(t('push.tag'), tagIn)));
    ctx.main.appendChild(out);
    var render = function () {
      var ws = wsSel.value || 'WORKSPACE';
      renderGuide(out, ws, repoIn.value.trim() || 'myapp', tagIn.value.trim() || 'latest');
    };
    wsSel.addEventListener('change', function () { setQuery({ ws: wsSel.value }); render(); });
    repoIn.addEventListener('input', render);
    tagIn.addEventListener('input', render);
    return api('GET', '/api/v1/workspaces?scope=' + (isAdmin() ? 'all' : 'own')).then(function (r) {
      if (!ctx.alive()) return;
      var want = ctx.query.get('ws');
      r.items.forEach(function (w) {
        wsProjects[w.name] = w.project;
        wsSel.appendChild(h('option', { value: w.name, selected: w.name === want }, w.name + ' (' + w.project + ')'));
      });
      render();
    });
  }

  function renderGuide(out, ws, repo, tag) {
    var host = location.host;
    var user = state.me.name;
    var insecure = location.protocol === 'http:';
    var ref = host + '/' + ws + '/' + repo + ':' + tag;
    var local = repo + ':' + tag;
    var block = function (id, title, lines, note) {
      var text = lines.join('\n');
      return h('section', { class: 'card guide', id: id },
        h('div', { class: 'guide-head' }, h('h2', null, title), copyButton(text)),
        note ? h('p', { class: 'muted' }, note) : null,
        h('pre', { class: 'cmd' }, h('code', null, text)));
    };
    clear(out);
    out.appendChild(h('p', { class: 'alert' }, t('push.credentials', { user: user, host: host })));
    if (insecure) out.appendChild(h('p', { class: 'alert warn', id: 'push-insecure' }, t('push.insecure', { host: host })));
    out.appendChild(block('guide-docker', 'Docker', [
      'docker login ' + host + ' -u ' + user,
      'docker tag ' + local + ' ' + ref,
      'docker push ' + ref
    ], insecure ? t('push.docker.insecure', { host: host }) : null));
    out.appendChild(block('guide-nerdctl', 'nerdctl (containerd)', [
      'nerdctl login ' + (insecure ? '--insecure-registry ' : '') + host + ' -u ' + user,
      'nerdctl tag ' + local + ' ' + ref,
      'nerdctl push ' + (insecure ? '--insecure-registry ' : '') + ref
    ]));
    out.appendChild(block('guide-ctr', 'ctr (containerd)', [
      'ctr -n default images tag docker.io/library/' + local + ' ' + ref,
      'ctr -n default images push --user ' + user + (insecure ? ' --plain-http' : '') + ' ' + ref
    ], t('push.ctr.note')));
    out.appendChild(block('guide-podman', 'Podman', [
      'podman login ' + (insecure ? '--tls-verify=false ' : '') + host + ' -u ' + user,
      'podman tag ' + local + ' ' + ref,
      'podman push ' + (insecure ? '--tls-verify=false ' : '') + ref
    ]));
    out.appendChild(block('guide-pull', t('push.pull'), ['docker pull ' + ref]));
    var robotLogin = "robot$" + (wsProject(ws) || 'PROJECT') + '+ci';
    out.appendChild(h('section', { class: 'card guide', id: 'guide-robot' },
      h('h2', null, t('push.robot.title')),
      h('ol', null,
        h('li', null, t('push.robot.step1'), ' ', adminsAnyProject() ? h('a', { href: '#/admin/robots' }, t('nav.robots')) : null),
        h('li', null, t('push.robot.step2')),
        h('li', null, t('push.robot.step3'))),
      h('pre', { class: 'cmd' }, h('code', null,
        "echo \"$BERTH_ROBOT_SECRET\" | docker login " + host + " -u '" + robotLogin + "' --password-stdin\n" +
        'docker push ' + ref)),
      h('p', { class: 'muted' }, t('push.robot.api')),
      h('pre', { class: 'cmd' }, h('code', null,
        'curl -u ADMIN -H \'Content-Type: application/json\' \\\n  -d \'{"name":"ci","workspaces":["' + ws + '"],"actions":["pull","push"],"expiresInDays":90}\' \\\n  ' +
        location.protocol + '//' + host + '/api/v1/projects/' + (wsProject(ws) || 'PROJECT') + '/robots'))));
  }

  var wsProjects = {};
  function wsProject(ws) { return wsProjects[ws]; }

  // ---- admin: users ----

  function pageUsers(ctx) {
    if (!isAdmin()) { ctx.main.appendChild(h('div', { class: 'alert error' }, t('error.adminOnly'))); return; }
    var form = userCreateForm(function () { route(); });
    form.hidden = true;
    ctx.main.appendChild(pageHeader(t('users.title'), t('users.intro'),
      [h('button', { type: 'button', class: 'primary', id: 'user-create-open', onclick: function () { form.hidden = !form.hidden; } }, t('users.create'))]));
    ctx.main.appendChild(form);
    var holder = h('div', null, loading());
    ctx.main.appendChild(holder);
    return api('GET', '/api/v1/users').then(function (r) {
      if (!ctx.alive()) return;
      var rows = r.items.map(function (u) {
        var self = u.name === state.me.name;
        var acts = [];
        acts.push(h('button', { type: 'button', class: 'small', onclick: function () {
          promptDialog(t('users.password.title', { name: u.name }), t('users.password.new'), 'password').then(function (pw) {
            if (pw === null) return;
            var body = { password: pw };
            var go = self ? promptDialog(t('users.password.title', { name: u.name }), t('users.password.old'), 'password').then(function (old) {
              if (old === null) return null;
              body.oldPassword = old;
              return body;
            }) : Promise.resolve(body);
            go.then(function (b) {
              if (!b) return;
              api('PATCH', '/api/v1/users/' + enc(u.name), b).then(function () { toast(t('users.password.done', { name: u.name })); }, function (e) { toast(errText(e), 'error'); });
            });
          });
        } }, t('users.password')));
        if (!self) {
          acts.push(h('button', { type: 'button', class: 'small', onclick: function () {
            api('PATCH', '/api/v1/users/' + enc(u.name), { disabled: !u.disabled }).then(function () { route(); }, function (e) { toast(errText(e), 'error'); });
          } }, u.disabled ? t('users.enable') : t('users.disable')));
          acts.push(h('button', { type: 'button', class: 'small', onclick: function () {
            api('PATCH', '/api/v1/users/' + enc(u.name), { cloudAdmin: !u.cloudAdmin }).then(function () { route(); }, function (e) { toast(errText(e), 'error'); });
          } }, u.cloudAdmin ? t('users.unadmin') : t('users.makeAdmin')));
          acts.push(h('button', { type: 'button', class: 'small danger', onclick: function () {
            confirmDialog(t('users.delete.title'), t('users.delete.confirm', { name: u.name }), t('common.delete'), true).then(function (ok) {
              if (!ok) return;
              api('DELETE', '/api/v1/users/' + enc(u.name)).then(function () { toast(t('users.delete.done', { name: u.name })); route(); }, function (e) { toast(errText(e), 'error'); });
            });
          } }, t('common.delete')));
        }
        return h('tr', { 'data-user': u.name },
          h('td', null, h('span', { class: 'strong' }, u.name)),
          h('td', null, u.cloudAdmin ? badge(t('role.cloud-admin'), 'admin') : ''),
          h('td', null, u.disabled ? badge(t('users.disabled'), 'off') : badge(t('users.active'), 'public')),
          h('td', null, u.memberships.map(function (m) { return h('span', { class: 'chip' }, m.project + ': ' + t('role.' + m.role)); })),
          h('td', null, fmtTime(u.created)),
          h('td', { class: 'row-actions' }, acts));
      });
      clear(holder).appendChild(table([t('users.col.name'), t('users.col.admin'), t('users.col.status'), t('users.col.projects'), t('users.col.created'), ''], rows, { id: 'users-table' }));
    });
  }

  function userCreateForm(onDone) {
    var name = h('input', { id: 'user-create-name', required: true, maxlength: 64, autocomplete: 'off' });
    var pw = h('input', { id: 'user-create-password', type: 'password', required: true, minlength: 8, maxlength: 72, autocomplete: 'new-password' });
    var admin = h('input', { id: 'user-create-admin', type: 'checkbox' });
    var msg = h('div', { class: 'form-msg' });
    var btn = h('button', { type: 'submit', class: 'primary' }, t('common.create'));
    return h('form', { class: 'card form-grid', onsubmit: function (e) {
      e.preventDefault();
      clear(msg);
      busy(btn, api('POST', '/api/v1/users', { name: name.value.trim(), password: pw.value, cloudAdmin: admin.checked })).then(function (u) {
        toast(t('users.create.done', { name: u.name }));
        onDone();
      }, function (err) { msg.appendChild(errorBox(err)); });
    } },
    h('h3', null, t('users.create')),
    field(t('users.col.name'), name),
    field(t('login.password'), pw, t('users.password.hint')),
    h('label', { class: 'check' }, admin, ' ', t('role.cloud-admin')),
    msg,
    h('div', { class: 'actions' }, btn));
  }

  // ---- admin: projects and members ----

  function pageProjects(ctx) {
    var form = null;
    var actions = [];
    if (isAdmin()) {
      form = projectCreateForm();
      form.hidden = true;
      actions.push(h('button', { type: 'button', class: 'primary', id: 'project-create-open', onclick: function () { form.hidden = !form.hidden; } }, t('projects.create')));
    }
    ctx.main.appendChild(pageHeader(t('projects.title'), t('projects.intro'), actions));
    if (form) ctx.main.appendChild(form);
    var holder = h('div', null, loading());
    ctx.main.appendChild(holder);
    state.cache.projects = null;
    return projects().then(function (ps) {
      if (!ctx.alive()) return;
      var rows = ps.map(function (p) {
        return h('tr', { 'data-project': p.name },
          h('td', null, h('a', { href: '#/admin/projects/' + enc(p.name), class: 'strong' }, p.name)),
          h('td', { class: 'desc' }, p.description || ''),
          h('td', { class: 'num' }, String(p.workspaces)),
          h('td', null, p.role ? t('role.' + p.role) : '—'),
          h('td', null, fmtTime(p.created)));
      });
      clear(holder).appendChild(table([t('projects.col.name'), t('projects.col.description'), t('projects.col.workspaces'), t('projects.col.role'), t('projects.col.created')], rows, { id: 'projects-table' }));
    });
  }

  function projectCreateForm() {
    var name = h('input', { id: 'project-create-name', required: true, maxlength: 64 });
    var desc = h('input', { id: 'project-create-description' });
    var msg = h('div', { class: 'form-msg' });
    var btn = h('button', { type: 'submit', class: 'primary' }, t('common.create'));
    return h('form', { class: 'card form-grid', onsubmit: function (e) {
      e.preventDefault();
      clear(msg);
      busy(btn, api('POST', '/api/v1/projects', { name: name.value.trim(), description: desc.value })).then(function (p) {
        toast(t('projects.create.done', { name: p.name }));
        state.cache.projects = null;
        route();
      }, function (err) { msg.appendChild(errorBox(err)); });
    } },
    h('h3', null, t('projects.create')),
    field(t('projects.col.name'), name),
    field(t('projects.col.description'), desc),
    msg,
    h('div', { class: 'actions' }, btn));
  }

  var ROLES = ['project-admin', 'developer', 'guest'];

  function pageProject(ctx) {
    var name = ctx.params[0];
    var admin = adminsProject(name);
    var actions = [];
    if (admin) actions.push(h('a', { href: '#/admin/robots?project=' + enc(name), class: 'button' }, t('nav.robots')));
    if (isAdmin()) {
      actions.push(h('button', { type: 'button', class: 'danger', onclick: function () {
        confirmDialog(t('projects.delete.title'), t('projects.delete.confirm', { name: name }), t('common.delete'), true).then(function (ok) {
          if (!ok) return;
          api('DELETE', '/api/v1/projects/' + enc(name)).then(function () {
            toast(t('projects.delete.done', { name: name }));
            state.cache.projects = null;
            location.hash = '#/admin/projects';
          }, function (e) { toast(errText(e), 'error'); });
        });
      } }, t('common.delete')));
    }
    ctx.main.appendChild(pageHeader(name, h('a', { href: '#/admin/projects' }, t('projects.title')), actions));
    var members = h('div', null, loading());
    var wss = h('div', null, loading());
    ctx.main.appendChild(h('h2', null, t('members.title')));
    if (admin) ctx.main.appendChild(memberAddForm(name));
    ctx.main.appendChild(members);
    ctx.main.appendChild(h('h2', null, t('ws.title')));
    ctx.main.appendChild(wss);
    var p1 = api('GET', '/api/v1/projects/' + enc(name) + '/members').then(function (r) {
      if (!ctx.alive()) return;
      var rows = r.items.map(function (m) {
        var roleCell = h('td', null, t('role.' + m.role));
        var acts = [];
        if (admin && (isAdmin() || m.user !== state.me.name)) {
          var sel = h('select', { 'aria-label': t('members.col.role'), onchange: function () {
            api('PUT', '/api/v1/projects/' + enc(name) + '/members/' + enc(m.user), { role: sel.value }).then(function () {
              toast(t('members.changed', { user: m.user, role: t('role.' + sel.value) }));
            }, function (e) { toast(errText(e), 'error'); sel.value = m.role; });
          } }, ROLES.map(function (ro) { return h('option', { value: ro, selected: ro === m.role }, t('role.' + ro)); }));
          clear(roleCell).appendChild(sel);
          acts.push(h('button', { type: 'button', class: 'small danger', onclick: function () {
            confirmDialog(t('members.remove.title'), t('members.remove.confirm', { user: m.user, project: name }), t('members.remove'), true).then(function (ok) {
              if (!ok) return;
              api('DELETE', '/api/v1/projects/' + enc(name) + '/members/' + enc(m.user)).then(function () { route(); }, function (e) { toast(errText(e), 'error'); });
            });
          } }, t('members.remove')));
        }
        return h('tr', { 'data-member': m.user }, h('td', null, h('span', { class: 'strong' }, m.user)), roleCell, h('td', null, fmtTime(m.added)), h('td', { class: 'row-actions' }, acts));
      });
      clear(members).appendChild(table([t('members.col.user'), t('members.col.role'), t('members.col.added'), ''], rows, { id: 'members-table' }));
    });
    var p2 = api('GET', '/api/v1/workspaces?scope=all&project=' + enc(name)).then(function (r) {
      if (!ctx.alive()) return;
      var rows = r.items.map(function (w) {
        return h('tr', null, h('td', null, h('a', { href: '#/ws/' + enc(w.name) }, w.name)), h('td', null, visBadge(w.visibility)), h('td', { class: 'num' }, String(w.repositories)), h('td', { class: 'row-actions' }, workspaceActions(w)));
      });
      clear(wss).appendChild(table([t('ws.col.name'), t('ws.col.visibility'), t('ws.col.repositories'), ''], rows));
    });
    return Promise.all([p1, p2]);
  }

  function memberAddForm(project) {
    var user = h('input', { id: 'member-add-user', required: true, placeholder: t('members.col.user') });
    var role = h('select', { id: 'member-add-role' }, ROLES.map(function (ro) { return h('option', { value: ro, selected: ro === 'developer' }, t('role.' + ro)); }));
    var btn = h('button', { type: 'submit', class: 'primary small' }, t('members.add'));
    return h('form', { class: 'inline card', onsubmit: function (e) {
      e.preventDefault();
      busy(btn, api('PUT', '/api/v1/projects/' + enc(project) + '/members/' + enc(user.value.trim()), { role: role.value })).then(function () {
        toast(t('members.added', { user: user.value.trim() }));
        route();
      }, function (err) { toast(errText(err), 'error'); });
    } }, user, role, btn);
  }

  // ---- admin: robot accounts ----

  function pageRobots(ctx) {
    ctx.main.appendChild(pageHeader(t('robots.title'), t('robots.intro')));
    var projSel = h('select', { id: 'robot-project' });
    var holder = h('div', null);
    var formBox = h('div', null);
    ctx.main.appendChild(h('div', { class: 'toolbar' }, field(t('ws.col.project'), projSel)));
    ctx.main.appendChild(formBox);
    ctx.main.appendChild(holder);
    function selectProject() {
      var project = projSel.value;
      if (!project) return Promise.resolve();
      setQuery({ project: project });
      clear(formBox);
      return api('GET', '/api/v1/workspaces?scope=all&project=' + enc(project)).then(function (r) {
        if (!ctx.alive() || projSel.value !== project) return;
        formBox.appendChild(robotCreateForm(project, r.items, function () { loadList(project); }));
        return loadList(project);
      }, function (err) { clear(holder).appendChild(errorBox(err)); });
    }
    function loadList(project) {
      return api('GET', '/api/v1/projects/' + enc(project) + '/robots').then(function (r) {
        if (!ctx.alive() || projSel.value !== project) return;
        var rows = r.items.map(function (rb) {
          return h('tr', { 'data-robot': rb.name },
            h('td', null, h('span', { class: 'strong mono' }, rb.login)),
            h('td', null, rb.workspaces.join(', ')),
            h('td', null, rb.actions.join(', ')),
            h('td', null, rb.expires ? fmtTime(rb.expires) : t('robots.never')),
            h('td', null, rb.disabled ? badge(t('users.disabled'), 'off') : badge(t('users.active'), 'public')),
            h('td', null, fmtTime(rb.created)),
            h('td', { class: 'row-actions' }, h('button', { type: 'button', class: 'small danger', onclick: function () {
              confirmDialog(t('robots.delete.title'), t('robots.delete.confirm', { name: rb.login }), t('robots.delete'), true).then(function (ok) {
                if (!ok) return;
                api('DELETE', '/api/v1/projects/' + enc(project) + '/robots/' + enc(rb.name)).then(function () {
                  toast(t('robots.delete.done', { name: rb.login }));
                  loadList(project);
                }, function (e) { toast(errText(e), 'error'); });
              });
            } }, t('robots.delete'))));
        });
        clear(holder).appendChild(table([t('robots.col.login'), t('robots.col.workspaces'), t('robots.col.actions'), t('robots.col.expires'), t('users.col.status'), t('robots.col.created'), ''], rows, { id: 'robots-table' }));
      }, function (err) { clear(holder).appendChild(errorBox(err)); });
    }
    projSel.addEventListener('change', selectProject);
    return projects().then(function (ps) {
      if (!ctx.alive()) return;
      var want = ctx.query.get('project');
      ps.filter(function (p) { return adminsProject(p.name); }).forEach(function (p) {
        projSel.appendChild(h('option', { value: p.name, selected: p.name === want }, p.name));
      });
      return selectProject();
    });
  }

  // robotCreateForm creates a robot and shows its secret, once; onCreated
  // refreshes the list (the secret stays on screen).
  function robotCreateForm(project, workspaces, onCreated) {
    var name = h('input', { id: 'robot-name', required: true, maxlength: 64, placeholder: 'ci' });
    var wsBoxes = workspaces.map(function (w) { return h('input', { type: 'checkbox', value: w.name, name: 'robot-ws' }); });
    var actBoxes = ['pull', 'push', 'delete'].map(function (a) { return h('input', { type: 'checkbox', value: a, name: 'robot-action', checked: a !== 'delete' }); });
    var days = h('input', { id: 'robot-days', type: 'number', min: 0, max: 36500, value: '90' });
    var msg = h('div', { class: 'form-msg' });
    var secretBox = h('div', null);
    var btn = h('button', { type: 'submit', class: 'primary', id: 'robot-submit' }, t('common.create'));
    var checked = function (bs) { return bs.filter(function (b) { return b.checked; }).map(function (b) { return b.value; }); };
    var form = h('form', { class: 'card form-grid', id: 'robot-form', onsubmit: function (e) {
      e.preventDefault();
      clear(msg);
      clear(secretBox);
      busy(btn, api('POST', '/api/v1/projects/' + enc(project) + '/robots', {
        name: name.value.trim(), workspaces: checked(wsBoxes), actions: checked(actBoxes), expiresInDays: parseInt(days.value || '0', 10)
      })).then(function (rb) {
        secretBox.appendChild(h('div', { class: 'card secret', id: 'robot-secret' },
          h('h3', null, t('robots.secret.title', { name: rb.login })),
          h('p', { class: 'alert warn' }, t('robots.secret.once')),
          h('div', { class: 'guide-head' }, h('pre', { class: 'cmd' }, h('code', null, rb.secret)), copyButton(rb.secret)),
          h('pre', { class: 'cmd' }, h('code', null, "echo '" + rb.secret + "' | docker login " + location.host + " -u '" + rb.login + "' --password-stdin"))));
        name.value = '';
        onCreated();
      }, function (err) { msg.appendChild(errorBox(err)); });
    } },
    h('h3', null, t('robots.create')),
    field(t('robots.col.name'), name),
    h('fieldset', { class: 'field' }, h('legend', null, t('robots.col.workspaces')),
      wsBoxes.length ? wsBoxes.map(function (b) { return h('label', { class: 'check' }, b, ' ', b.value); }) : h('span', { class: 'muted' }, t('robots.noWorkspace'))),
    h('fieldset', { class: 'field' }, h('legend', null, t('robots.col.actions')), actBoxes.map(function (b) { return h('label', { class: 'check' }, b, ' ', b.value); })),
    field(t('robots.days'), days, t('robots.days.hint')),
    msg,
    h('div', { class: 'actions' }, btn));
    return h('div', null, form, secretBox);
  }

  // ---- admin: garbage collection ----
  //
  // POST /api/v1/gc {"dryRun"} starts a run (202); the leader runs it and
  // GET /api/v1/gc/{id} reports it; GET /api/v1/gc is the history.

  var GC_ACTIVE = ['requested', 'marking', 'paused'];

  function pageGC(ctx) {
    ctx.main.appendChild(pageHeader(t('gc.title'), t('gc.intro')));
    if (!isAdmin()) { ctx.main.appendChild(h('div', { class: 'alert error' }, t('error.adminOnly'))); return; }
    if (!gcAPI()) { ctx.main.appendChild(h('div', { class: 'alert' }, t('gc.unavailable'))); return; }
    var out = h('div', { id: 'gc-last' });
    var hist = h('div', null, loading());
    var buttons = [];
    var follow = function (run) {
      clear(out).appendChild(gcReport(run));
      if (GC_ACTIVE.indexOf(run.state) < 0) {
        buttons.forEach(function (b) { b.disabled = false; });
        toast(run.state === 'done' ? (run.dryRun ? t('gc.dry.done') : t('gc.run.done')) : t('gc.ended', { state: t('gc.state.' + run.state) }),
          run.state === 'done' ? 'ok' : 'error');
        loadHistory();
        return;
      }
      setTimeout(function () {
        if (!ctx.alive()) return;
        api('GET', '/api/v1/gc/' + enc(run.id)).then(follow, function (e) {
          buttons.forEach(function (b) { b.disabled = false; });
          clear(out).appendChild(errorBox(e));
        });
      }, 500);
    };
    var start = function (dry) {
      buttons.forEach(function (b) { b.disabled = true; });
      return api('POST', '/api/v1/gc', { dryRun: dry }).then(function (run) { follow(run); loadHistory(); }, function (e) {
        buttons.forEach(function (b) { b.disabled = false; });
        clear(out).appendChild(errorBox(e));
      });
    };
    var dryBtn = h('button', { type: 'button', class: 'primary', id: 'gc-dry', onclick: function () { start(true); } }, t('gc.dry'));
    var runBtn = h('button', { type: 'button', class: 'danger', id: 'gc-run', onclick: function () {
      confirmDialog(t('gc.run.title'), t('gc.run.confirm'), t('gc.run'), true).then(function (ok) { if (ok) start(false); });
    } }, t('gc.run'));
    buttons = [dryBtn, runBtn];
    ctx.main.appendChild(h('div', { class: 'card' }, h('p', { class: 'muted' }, t('gc.dry.hint')), h('div', { class: 'actions left gc-actions' }, dryBtn, runBtn), out));
    ctx.main.appendChild(h('h2', null, t('gc.history')));
    ctx.main.appendChild(hist);
    function loadHistory() {
      return api('GET', '/api/v1/gc').then(function (r) {
        if (!ctx.alive()) return;
        var rows = (r.items || []).map(function (g) {
          var counts = g.dryRun ? g.candidates : g.reclaimed;
          return h('tr', { 'data-gc': g.id },
            h('td', { class: 'mono' }, g.id),
            h('td', null, g.dryRun ? badge(t('gc.kind.dry'), 'private') : badge(t('gc.kind.run'), 'public')),
            h('td', null, fmtTime(g.started || g.requested)),
            h('td', null, gcStateBadge(g.state)),
            h('td', null, g.startedBy || '—'),
            h('td', { class: 'num' }, counts ? String(counts.blobs) : '—'),
            h('td', { class: 'num' }, counts ? fmtBytes(counts.bytes) : '—'),
            h('td', { class: 'num' }, fmtSeconds(g.pauseSeconds)),
            h('td', { class: 'num' }, fmtSeconds(g.durationSeconds)));
        });
        clear(hist).appendChild(table([t('gc.col.id'), t('gc.col.kind'), t('gc.col.started'), t('gc.col.status'), t('gc.col.by'),
          t('gc.col.blobs'), t('gc.col.bytes'), t('gc.col.pause'), t('gc.col.duration')], rows, { id: 'gc-history', empty: t('gc.none') }));
        hist.appendChild(h('p', { class: 'muted small' }, t('gc.history.note')));
        var active = (r.items || []).filter(function (g) { return GC_ACTIVE.indexOf(g.state) >= 0; })[0];
        if (active && !out.firstChild) { buttons.forEach(function (b) { b.disabled = true; }); follow(active); }
      }, function (e) { clear(hist).appendChild(errorBox(e)); });
    }
    return loadHistory();
  }

  function fmtSeconds(v) {
    if (v === undefined || v === null) return '—';
    if (v < 1) return (v * 1000).toFixed(v < 0.01 ? 2 : 1) + ' ms';
    return v.toFixed(1) + ' s';
  }

  function gcStateBadge(state) {
    var kind = state === 'done' ? 'public' : (state === 'failed' || state === 'aborted') ? 'off' : 'admin';
    return badge(t('gc.state.' + state), kind);
  }

  // gcReport shows one run: its state, what it would reclaim or reclaimed,
  // its timings, and each node's deletions.
  function gcReport(run) {
    var counts = function (c) {
      return c ? [t('gc.count.blobs', { n: c.blobs, size: fmtBytes(c.bytes) }), t('gc.count.manifests', { n: c.manifests }),
        t('gc.count.tags', { n: c.tags }), t('gc.count.repositories', { n: c.repositories }), t('gc.count.trash', { n: c.trashItems })].join(' · ') : '—';
    };
    var rows = [
      [t('gc.col.id'), h('span', { class: 'mono' }, run.id)],
      [t('gc.col.status'), gcStateBadge(run.state)],
      [t('gc.col.kind'), run.dryRun ? t('gc.kind.dry') : t('gc.kind.run')],
      [run.dryRun ? t('gc.wouldReclaim') : t('gc.candidates'), counts(run.candidates)]
    ];
    if (!run.dryRun) rows.push([t('gc.reclaimed'), counts(run.reclaimed)]);
    rows.push([t('gc.timing'), t('gc.timing.value', { mark: fmtSeconds(run.markSeconds), pause: fmtSeconds(run.pauseSeconds), total: fmtSeconds(run.durationSeconds) })]);
    Object.keys(run.nodes || {}).sort().forEach(function (id) {
      var n = run.nodes[id];
      rows.push([t('gc.node', { node: id }), t('gc.node.value', { files: n.files, size: fmtBytes(n.bytes), orphans: n.orphans })]);
    });
    if (run.pendingNodes && run.pendingNodes.length) rows.push([t('gc.pending'), run.pendingNodes.join(', ')]);
    (run.errors || []).forEach(function (e) { rows.push([t('gc.error'), h('span', { class: 'error-text' }, e)]); });
    return h('table', { class: 'kv', id: 'gc-report', 'data-state': run.state }, h('tbody', null, rows.map(function (r) {
      return h('tr', null, h('th', null, r[0]), h('td', null, r[1]));
    })));
  }

  // ---- admin: cluster ----

  function pageCluster(ctx) {
    ctx.main.appendChild(pageHeader(t('cluster.title'), t('cluster.intro')));
    if (!isAdmin()) { ctx.main.appendChild(h('div', { class: 'alert error' }, t('error.adminOnly'))); return; }
    var holder = h('div', null, loading());
    var updated = h('span', { class: 'muted' });
    ctx.main.appendChild(h('div', { class: 'toolbar' }, updated, h('button', { type: 'button', class: 'small', onclick: function () { load(); } }, t('common.refresh'))));
    ctx.main.appendChild(holder);
    function load() {
      return api('GET', '/api/v1/cluster').then(function (c) {
        if (!ctx.alive()) return;
        updated.textContent = t('cluster.updated', { time: new Date().toLocaleTimeString(state.lang) });
        var summary = h('div', { class: 'cards' },
          stat(t('cluster.leader'), c.leader || t('cluster.noLeader'), c.leader ? '' : 'bad'),
          stat(t('cluster.term'), String(c.term)),
          stat(t('cluster.answeredBy'), c.node),
          stat(t('cluster.nodes'), String((c.nodes || []).length)));
        var rows = (c.nodes || []).map(function (n) {
          var disk = n.disk && n.disk.capacityBytes ? fmtBytes(n.disk.usedBytes) + ' / ' + fmtBytes(n.disk.capacityBytes) : '—';
          var healthy = n.state === 'alive' && !n.error;
          return h('tr', { 'data-node': n.id },
            h('td', null, h('span', { class: 'strong' }, n.id), n.isLeader ? badge(t('cluster.leader'), 'admin') : null, n.draining ? badge(t('cluster.draining'), 'off') : null),
            h('td', null, n.zone || '—'),
            h('td', null, badge(n.state, healthy ? 'public' : 'off'), n.error ? h('div', { class: 'muted small' }, n.error) : null),
            h('td', null, n.suffrage || '—', n.raftState ? ' · ' + n.raftState : ''),
            h('td', { class: 'num' }, n.commitIndex !== undefined ? n.appliedIndex + ' / ' + n.commitIndex : '—'),
            h('td', { class: 'num' }, n.lastContactAgeSeconds !== undefined ? n.lastContactAgeSeconds.toFixed(1) + ' s' : '—'),
            h('td', { class: 'num' }, n.rttMillis ? n.rttMillis.toFixed(1) + ' ms' : '—'),
            h('td', { class: 'num' }, disk),
            h('td', { class: 'num' }, n.blobs !== undefined ? n.blobs + ' · ' + fmtBytes(n.blobBytes) : '—'),
            h('td', { class: 'num' }, n.replicationBacklog !== undefined ? String(n.replicationBacklog) : '—'),
            h('td', { class: 'mono small' }, n.apiAddr || ''));
        });
        clear(holder).appendChild(summary);
        holder.appendChild(table([t('cluster.col.node'), t('cluster.col.zone'), t('cluster.col.state'), t('cluster.col.raft'), t('cluster.col.index'), t('cluster.col.contact'), t('cluster.col.rtt'), t('cluster.col.disk'), t('cluster.col.blobs'), t('cluster.col.backlog'), t('cluster.col.addr')], rows, { id: 'cluster-table' }));
      }, function (e) { clear(holder).appendChild(errorBox(e)); });
    }
    var timer = setInterval(function () { if (!ctx.alive()) { clearInterval(timer); return; } load(); }, 10000);
    return load();
  }

  function stat(label, value, kind) {
    return h('div', { class: 'stat ' + (kind || '') }, h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value' }, value));
  }

  // ---- start ----

  function start() {
    var lang = pickLang();
    ['click', 'keydown'].forEach(function (ev) {
      document.addEventListener(ev, function () { state.lastActivity = Date.now(); }, true);
    });
    setInterval(renewIfActive, 30 * 1000);
    window.addEventListener('hashchange', function () { state.lastActivity = Date.now(); route(); });
    Promise.all([loadLang(lang), loadOps()]).then(function () {
      return api('GET', '/api/v1/session', undefined, { quiet401: true }).then(startSession, function () { return null; });
    }).then(function () {
      renderChrome();
      // workspace -> project, for the push guide's robot example
      if (state.me) {
        api('GET', '/api/v1/workspaces?scope=all').then(function (r) {
          r.items.forEach(function (w) { wsProjects[w.name] = w.project; });
        }, function () { /* only an example */ });
      }
      route();
      document.body.classList.add('ready');
    }).catch(function (err) {
      clear($('main')).appendChild(errorBox(err));
    });
  }

  start();
})();
