/**
 * The platform admin's desk pages as HTML (desk-admin.ts serves them): apps, an app, channels, operators, and the
 * pages that show a secret once (an app's AccessToken, an operator's password). Pure functions of their data;
 * every text escaped; never a secret except on the show-once pages.
 */
import { esc } from '../../formats/html.js';
import { formatShanghai } from '../../domain/clock.js';
import { PAY_TYPE_NAMES, type PayType } from '../../domain/trade.js';
import { can, ROLES, ROLE_LABELS, type Role } from '../../domain/access.js';
import type { App, OperatorView } from '../../services/records.js';
import type { PayTypeStatus } from '../../services/apps.js';
import { csrfInput, deskPage, type DeskFlash, type DeskViewer } from './desk-kit.js';

const when = (d: Date | string) => formatShanghai(typeof d === 'string' ? new Date(d) : d);

function badge(kind: 'ok' | 'bad' | 'warn' | '', text: string): string {
  return `<span class="badge${kind ? ` ${kind}` : ''}">${esc(text)}</span>`;
}

function statusBadge(status: 'active' | 'disabled'): string {
  return status === 'active' ? badge('ok', '启用 active') : badge('bad', '停用 disabled');
}

const appHref = (id: string) => `/desk/apps/${encodeURIComponent(id)}`;

/** The name of a pay type or the medical-insurance side. */
export function payTypeName(payType: string): string {
  if (payType === 'medicare') return '医保 medicare';
  const n = PAY_TYPE_NAMES[payType as PayType] as { zh: string; en: string } | undefined;
  return n ? `${n.zh} ${payType}` : payType;
}

// ------------------------------------------------------------------------------------------------ apps

export function appsView(
  viewer: DeskViewer,
  apps: readonly App[],
  form: { nonce: string; name?: string; hospitalId?: string },
  flash?: DeskFlash | null,
): string {
  const rows = apps
    .map(
      (a) => `<tr data-app="${esc(a.id)}">
<td><a href="${appHref(a.id)}">${esc(a.name)}</a><br><code>${esc(a.id)}</code></td>
<td>${esc(a.hospital_id ?? '—')}</td>
<td>${statusBadge(a.status)}</td>
<td>${a.public_key ? badge('ok', '已登记 registered') : badge('', '未登记 none')}${a.legacy_sign ? ` ${badge('warn', '旧签名 legacy')}` : ''}</td>
<td>${a.desk_approval ? badge('ok', '复核 on') : badge('warn', '不复核 off')}</td>
<td class="num">${esc(when(a.created_at))}</td>
</tr>`,
    )
    .join('\n');
  const body = `<div class="card"><h1>应用 / apps</h1>
<p class="muted">每个应用对应一家医院（HIS）。AccessToken 只在创建或重新签发时显示一次。Each app is one hospital; its AccessToken is shown once.</p>
<div class="scroll"><table id="apps">
<thead><tr><th>名称 / 应用号</th><th>医院编号</th><th>状态</th><th>网关公钥</th><th>退款复核</th><th>创建时间</th></tr></thead>
<tbody>
${rows || '<tr><td colspan="6" class="muted">还没有应用 / no apps yet</td></tr>'}
</tbody></table></div></div>
<div class="card"><h2>创建应用 / create an app</h2>
<form method="post" action="/desk/apps" class="stack" id="create-app">
${csrfInput(viewer)}<input type="hidden" name="form" value="${esc(form.nonce)}">
<label>名称 name（必填，≤ 64 字）<input name="name" id="app-name" required maxlength="64" value="${esc(form.name ?? '')}"></label>
<label>医院编号 hospital_id（选填，≤ 64 字）<input name="hospital_id" id="app-hospital" maxlength="64" value="${esc(form.hospitalId ?? '')}"></label>
<div><button type="submit" id="create-app-submit">创建 create</button></div>
</form></div>`;
  return deskPage('应用', viewer, 'apps', body, flash);
}

/** The one page that shows a secret: an AccessToken or a password, once. */
export function secretOnceView(
  viewer: DeskViewer,
  opts: {
    title: string;
    section: 'apps' | 'operators';
    lead: string;
    facts: readonly [string, string][];
    secretLabel: string;
    secret: string;
    back: { href: string; text: string };
  },
): string {
  const facts = opts.facts.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('');
  const body = `<div class="card"><h1>${esc(opts.title)}</h1>
<p>${esc(opts.lead)}</p>
<dl>${facts}</dl>
<p><strong>${esc(opts.secretLabel)}</strong></p>
<div class="secret-once" id="secret-once">${esc(opts.secret)}</div>
<p class="warn"><strong>只显示这一次：请立即复制并安全交付，离开或刷新本页后无法再次查看。</strong>
This is shown once only: copy it now and hand it over safely; it cannot be shown again.</p>
<p><a class="button" href="${esc(opts.back.href)}">${esc(opts.back.text)}</a></p></div>`;
  return deskPage(opts.title, viewer, opts.section, body);
}

export function appView(viewer: DeskViewer, app: App, flash?: DeskFlash | null): string {
  const id = esc(app.id);
  const post = (path: string) => `/desk/apps/${encodeURIComponent(app.id)}/${path}`;
  const statusForm = can(viewer.principal, 'channels.write')
    ? `<form method="post" action="${post('status')}" class="inline">${csrfInput(viewer)}
<input type="hidden" name="status" value="${app.status === 'active' ? 'disabled' : 'active'}"><input type="hidden" name="back" value="app">
${
  app.status === 'active'
    ? '<button type="submit" class="danger" id="disable-app">停用 disable</button>'
    : '<button type="submit" id="enable-app">启用 enable</button>'
}</form>`
    : '';
  const body = `<div class="card"><h1>${esc(app.name)}</h1>
<dl id="app-facts">
<dt>应用号 app_id</dt><dd><code>${id}</code></dd>
<dt>医院编号 hospital_id</dt><dd>${esc(app.hospital_id ?? '—')}</dd>
<dt>状态 status</dt><dd>${statusBadge(app.status)}</dd>
<dt>网关公钥 gateway key</dt><dd>${app.public_key ? badge('ok', '已登记 registered') : badge('', '未登记 none')}${app.legacy_sign ? ` ${badge('warn', '旧签名 legacy (RSA/SHA-1)')}` : ''}</dd>
<dt>退款复核 approval</dt><dd>${app.desk_approval ? badge('ok', '开 on：退款/撤销需第二人审批') : badge('warn', '关 off：退款/撤销直接执行')}</dd>
<dt>创建时间 created</dt><dd>${esc(when(app.created_at))}</dd>
</dl>
<div class="toolbar">${statusForm}<a class="button secondary" href="/desk/channels?app=${encodeURIComponent(app.id)}">渠道配置 channels</a></div>
</div>
<div class="grid2">
<div class="card"><h2>登记网关公钥 / register the gateway public key</h2>
<p class="muted">医院的 RSA 公钥（PEM 或 Base64，至少 2048 位）。只提交公钥；私钥会被拒绝。The hospital's RSA public key (2048 bits or more); a private key is refused.</p>
<form method="post" action="${post('public-key')}" class="stack" id="public-key-form">${csrfInput(viewer)}
<label>公钥 public key<textarea name="public_key" id="public-key" rows="7" spellcheck="false" required></textarea></label>
<div><input type="checkbox" name="legacy_sign" value="1" id="legacy-sign"> <label for="legacy-sign">旧系统签名（RSA/SHA-1，允许 1024 位）legacy signing</label></div>
<div><button type="submit" id="public-key-submit">登记 register</button></div>
</form></div>
<div class="card"><h2>退款复核 / maker–checker</h2>
<p class="muted">开启时，运维台上的退款与撤销须由另一人审批后才执行。When on, a refund or cancel asked at the desk runs only after a second person approves it.</p>
<div class="toolbar"><form method="post" action="${post('approval')}" class="inline">${csrfInput(viewer)}
<input type="hidden" name="on" value="${app.desk_approval ? '0' : '1'}">
${
  app.desk_approval
    ? '<button type="submit" class="danger" id="approval-off">关闭复核 turn off</button>'
    : '<button type="submit" id="approval-on">开启复核 turn on</button>'
}</form></div>
<h2>AccessToken</h2>
<p class="muted">令牌只保存摘要，无法再次查看；丢失时重新签发，旧令牌立即失效。Only its hash is kept: reissue it if lost (the old one stops working).</p>
<div class="toolbar"><form method="post" action="${post('token')}" class="inline">${csrfInput(viewer)}
<button type="submit" class="danger" id="reissue-token">重新签发 reissue</button></form></div>
</div>
</div>`;
  return deskPage(app.name, viewer, 'apps', body, flash);
}

// -------------------------------------------------------------------------------------------- channels

const SOURCE_LABEL: Record<'app' | 'platform' | 'default' | 'missing', string> = {
  app: '本应用 app',
  platform: '平台级 platform',
  default: '默认 default',
  missing: '缺少 missing',
};

function fieldRows(s: PayTypeStatus): string {
  if (s.serving === null) return '';
  if (s.fields.length === 0)
    return `<p class="muted">${s.serving === 'simulator' ? '内置模拟器：无需配置，不收真钱 / the simulator takes no real money' : '无需配置 / nothing to configure'}</p>`;
  const rows = s.fields
    .map((f) => {
      const kind = f.source === 'missing' ? (f.required ? 'bad' : '') : 'ok';
      const plain = f.shown ?? '';
      const value = f.secret
        ? f.source === 'missing'
          ? ''
          : '已设置 set（不显示）'
        : plain.startsWith('-----BEGIN')
          ? '已设置 set（PEM）'
          : plain;
      return `<tr><td><code>${esc(f.name)}</code>${f.secret ? ' <span class="badge">密钥 secret</span>' : ''}<br><span class="muted">${esc(f.zh)}</span></td><td>${badge(kind as 'ok' | 'bad' | '', SOURCE_LABEL[f.source])}${f.required ? '' : ' <span class="muted">选填</span>'}</td><td>${esc(value.length > 80 ? `${value.slice(0, 80)}…` : value)}</td></tr>`;
    })
    .join('');
  return `<table class="fields"><thead><tr><th>字段 field</th><th>来源 source</th><th>值 value</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function problemList(s: PayTypeStatus): string {
  if (s.problems.length === 0) return '';
  return `<ul class="bad">${s.problems.map((p) => `<li><code>${esc(p.field)}</code>：${esc(p.zh)} / ${esc(p.en)}</li>`).join('')}</ul>`;
}

function mapForm(viewer: DeskViewer, app: App, s: PayTypeStatus): string {
  const options = [
    ...s.choices.map(
      (c) =>
        `<option value="${esc(c.id)}"${c.id === (s.mapped ?? s.serving) ? ' selected' : ''}>${esc(c.id)} · ${esc(c.zh)}</option>`,
    ),
    `<option value="none"${s.mapped === null && s.serving === null ? ' selected' : ''}>none · 不开通</option>`,
  ].join('');
  return `<form method="post" action="/desk/channels/${encodeURIComponent(app.id)}/map" class="inline map-form">${csrfInput(viewer)}
<input type="hidden" name="pay_type" value="${esc(s.payType)}">
<select name="channel" aria-label="${esc(payTypeName(s.payType))} 渠道">${options}</select>
<button type="submit" class="secondary">切换 switch</button></form>`;
}

export interface AppChannels {
  app: App;
  status: PayTypeStatus[];
}

export function channelsView(
  viewer: DeskViewer,
  apps: readonly AppChannels[],
  platform: readonly {
    channel: string;
    values: Record<string, string>;
    problems: { field: string; zh: string; en: string }[];
  }[],
  opts: { filterApp: string | null; choices: readonly App[] },
  flash?: DeskFlash | null,
): string {
  const writes = can(viewer.principal, 'channels.write');
  const filter =
    opts.choices.length > 1
      ? `<form method="get" action="/desk/channels" class="toolbar"><label>医院 hospital<select name="app" id="filter-app"><option value="">全部 all</option>${opts.choices
          .map(
            (a) =>
              `<option value="${esc(a.id)}"${a.id === opts.filterApp ? ' selected' : ''}>${esc(a.name)}</option>`,
          )
          .join('')}</select></label><button type="submit" class="secondary">查看 show</button></form>`
      : '';
  const cards = apps
    .map(({ app, status }) => {
      const rows = status
        .map(
          (s) => `<tr data-pay-type="${esc(s.payType)}"><td><div class="grid2">
<div><strong>${esc(payTypeName(s.payType))}</strong> → ${s.serving ? `<code>${esc(s.serving)}</code>` : '<span class="muted">—</span>'} ${s.live ? badge('ok', '可用 live') : `${badge(s.serving ? 'bad' : '', '不可用 off')}<br><span class="muted">${esc(s.why ?? '')}</span>`}${s.mapped && s.mapped !== s.serving ? `<br><span class="warn">映射 ${esc(s.mapped)}</span>` : ''}${writes ? `<div class="toolbar">${mapForm(viewer, app, s)}</div>` : ''}</div>
<div>${fieldRows(s)}${problemList(s)}</div>
</div></td></tr>`,
        )
        .join('\n');
      const statusForm = writes
        ? `<form method="post" action="/desk/apps/${encodeURIComponent(app.id)}/status" class="inline">${csrfInput(viewer)}
<input type="hidden" name="status" value="${app.status === 'active' ? 'disabled' : 'active'}"><input type="hidden" name="back" value="channels">
${app.status === 'active' ? '<button type="submit" class="danger">停用应用 disable</button>' : '<button type="submit">启用应用 enable</button>'}</form>`
        : '';
      return `<div class="card app-channels" data-app="${esc(app.id)}"><h2>${esc(app.name)} <span class="muted">${esc(app.hospital_id ?? '')}</span> ${statusBadge(app.status)}</h2>
<div class="toolbar"><code>${esc(app.id)}</code>${statusForm}</div>
<table class="pay-types"><tbody>
${rows}
</tbody></table></div>`;
    })
    .join('\n');
  const platformCard =
    writes && platform.length > 0
      ? `<div class="card" id="platform-channels"><h2>平台级配置 / platform-level configuration</h2>
<p class="muted">服务商凭据，所有应用共用；密钥只显示"已设置"。Shared by every app; secrets only as "set".</p>
<table><thead><tr><th>渠道</th><th>已设置字段 fields set</th><th>问题 problems</th></tr></thead><tbody>${platform
          .map(
            (p) =>
              `<tr><td><code>${esc(p.channel)}</code></td><td>${Object.keys(p.values)
                .map((k) => `<code>${esc(k)}</code>`)
                .join(
                  ' ',
                )}</td><td>${p.problems.length ? p.problems.map((x) => `${esc(x.field)}: ${esc(x.zh)}`).join('<br>') : '<span class="ok">无 none</span>'}</td></tr>`,
          )
          .join('')}</tbody></table></div>`
      : '';
  const body = `<div class="card"><h1>渠道 / channels</h1>
<p class="muted">每家医院的每种支付方式由哪个渠道受理、配置是否完整、当前能否收款。密钥从不显示。${writes ? '' : '（只读 read-only）'}
Which channel serves each pay type, what its configuration lacks, and whether it takes payments now.</p>
${filter}</div>
${cards || '<div class="card muted">没有可查看的医院 / no hospitals to show</div>'}
${platformCard}`;
  return deskPage('渠道', viewer, 'channels', body, flash);
}

// ------------------------------------------------------------------------------------------- operators

function appsText(apps: 'all' | readonly string[], names: ReadonlyMap<string, string>): string {
  if (apps === 'all') return '全部医院 all';
  if (apps.length === 0) return '无 none';
  return apps.map((a) => names.get(a) ?? a).join('、');
}

function appChecks(key: string, apps: readonly App[], granted: 'all' | readonly string[]): string {
  const all = granted === 'all';
  const id = (x: string) => esc(`${key}-${x}`);
  return `<div><input type="checkbox" name="all_apps" value="1" id="${id('all')}"${all ? ' checked' : ''}> <label for="${id('all')}">全部医院（含以后新增）all hospitals</label></div>
${apps
  .map(
    (a, i) =>
      `<div><input type="checkbox" name="app.${esc(a.id)}" value="1" id="${id(String(i))}"${!all && granted.includes(a.id) ? ' checked' : ''}> <label for="${id(String(i))}">${esc(a.name)} <code>${esc(a.id)}</code></label></div>`,
  )
  .join('\n')}`;
}

function roleSelect(name: string, current: Role, id?: string): string {
  return `<select name="${name}"${id ? ` id="${id}"` : ''}>${ROLES.map(
    (r) => `<option value="${r}"${r === current ? ' selected' : ''}>${esc(ROLE_LABELS[r])}</option>`,
  ).join('')}</select>`;
}

export function operatorsView(
  viewer: DeskViewer,
  operators: readonly OperatorView[],
  apps: readonly App[],
  form: { username?: string; displayName?: string; role?: Role },
  flash?: DeskFlash | null,
): string {
  const names = new Map(apps.map((a) => [a.id, a.name]));
  const rows = operators
    .map((o) => {
      const u = encodeURIComponent(o.username);
      const self = o.username === viewer.principal.username;
      const lock = o.locked_until
        ? `${badge('warn', `限制至 ${when(o.locked_until)}`)}`
        : o.failed_logins > 0
          ? `<span class="muted">失败 ${o.failed_logins} 次</span>`
          : '';
      const manage = self
        ? '<span class="muted">本人账号：请让另一位平台管理员修改 / your own account: another platform admin changes it</span>'
        : `<details><summary>管理 manage</summary>
<form method="post" action="/desk/operators/${u}/role" class="toolbar">${csrfInput(viewer)}${roleSelect('role', o.role)}<button type="submit" class="secondary">改角色 role</button></form>
${
  o.role === 'platform_admin'
    ? ''
    : `<form method="post" action="/desk/operators/${u}/apps" class="stack">${csrfInput(viewer)}${appChecks(`g-${o.username}`, apps, o.apps)}<div><button type="submit" class="secondary">改医院 hospitals</button></div></form>`
}
<div class="toolbar">
<form method="post" action="/desk/operators/${u}/status" class="inline">${csrfInput(viewer)}<input type="hidden" name="status" value="${o.status === 'active' ? 'disabled' : 'active'}">${
            o.status === 'active'
              ? '<button type="submit" class="danger">停用 disable</button>'
              : '<button type="submit">启用 enable</button>'
          }</form>
<form method="post" action="/desk/operators/${u}/password" class="inline">${csrfInput(viewer)}<button type="submit" class="secondary">重置密码 reset password</button></form>
</div></details>`;
      return `<tr data-operator="${esc(o.username)}">
<td><strong>${esc(o.display_name)}</strong><br><code>${esc(o.username)}</code></td>
<td>${esc(ROLE_LABELS[o.role])}</td>
<td>${esc(appsText(o.apps, names))}</td>
<td>${statusBadge(o.status)} ${lock}</td>
</tr>
<tr class="manage" data-manage="${esc(o.username)}"><td colspan="4">${manage}</td></tr>`;
    })
    .join('\n');
  const body = `<div class="card"><h1>操作员 / operators</h1>
<div class="scroll"><table id="operators">
<thead><tr><th>操作员</th><th>角色 role</th><th>医院 hospitals</th><th>状态 status</th></tr></thead>
<tbody>${rows || '<tr><td colspan="4" class="muted">还没有操作员 / none yet</td></tr>'}</tbody></table></div></div>
<div class="card"><h2>新建操作员 / create an operator</h2>
<p class="muted">系统生成强密码，只显示一次。A strong password is generated and shown once.</p>
<form method="post" action="/desk/operators" class="stack" id="create-operator">${csrfInput(viewer)}
<label>用户名 username（2–32 位字母数字 . _ -）<input name="username" id="op-username" required maxlength="32" pattern="[A-Za-z0-9._-]{2,32}" value="${esc(form.username ?? '')}"></label>
<label>显示名 display name<input name="display_name" id="op-display" required maxlength="64" value="${esc(form.displayName ?? '')}"></label>
<label>角色 role${roleSelect('role', form.role ?? 'finance', 'op-role')}</label>
<fieldset><legend class="muted">可见医院 hospitals（平台管理员总是全部）</legend>${appChecks('new', apps, [])}</fieldset>
<div><button type="submit" id="create-operator-submit">创建 create</button></div>
</form></div>`;
  return deskPage('操作员', viewer, 'operators', body, flash);
}
