// Smart Vallée live dashboard: plain JavaScript, no build step, no third-party code.
// Everything comes from the hub's public GraphQL API: queries every REFRESH_MS, and the
// `alerts` subscription (graphql-transport-ws) for alerts as they open or clear.
'use strict';

const REFRESH_MS = 5000;
const SVG = 'http://www.w3.org/2000/svg';
const $ = (id) => document.getElementById(id);
const fmtTime = (iso) => new Date(iso).toLocaleString('fr-FR', { timeZone: 'Europe/Paris', dateStyle: 'short', timeStyle: 'short' });
const pct = (x) => `${Math.round(x * 100)} %`;
const KIND = { FILL: 'plein', FIRE: 'feu', STATUS: 'état', SILENT: 'silencieux', FROST: 'gel', DOWNY_MILDEW: 'mildiou', POWDERY_MILDEW: 'oïdium', OTHER: 'autre' };
const RISK = { LOW: 'faible', MODERATE: 'modéré', HIGH: 'élevé' };
// The live list is the bins'; vineyard alerts on the same topic have their own panel.
const BIN_KINDS = new Set(['FILL', 'FIRE', 'STATUS', 'SILENT']);
const STATUS = { OPEN: 'ouvert', CLOSED: 'clos' };
const IDEA_STATE = { NOT_ANSWERED: 'sans réponse', EVALUATING: "à l'étude", ACCEPTED: 'retenue', REJECTED: 'non retenue', WITHDRAWN: 'retirée' };
// The public API withholds counts of 1 to 4 people (statistical confidentiality, k = 5), and
// totals from which one could be recomputed: shown as such, never as a number.
const SECRET = 'secret statistique : moins de 5 personnes, ou valeur qui permettrait de retrouver un effectif masqué';

let communes = [];
let openAlerts = new Map();

async function gql(query, variables = {}) {
  const r = await fetch('/graphql', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = await r.json();
  if (body.errors) throw new Error(body.errors.map((e) => e.message).join('; '));
  return body.data;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// A count for a table cell or a sentence: the number, or a withheld count as "< 5" (a count
// of 1 to 4) or "masqué" (a total withheld with its parts), with its explanation for
// assistive technologies and on hover.
function count(value, small = true) {
  if (value != null) return String(value);
  return el('abbr', { class: 'secret', title: SECRET, 'aria-label': small ? 'moins de 5 (secret statistique)' : 'masqué (secret statistique)' }, small ? '< 5' : 'masqué');
}

function countText(value, small = true) {
  if (value != null) return String(value);
  return small ? 'moins de 5' : 'masqué';
}

function communeName(code) {
  const c = communes.find((x) => x.code === code);
  return c ? c.name : code || 'hors commune';
}

// ---- Plan of the valley --------------------------------------------------------------
function projection() {
  const lats = communes.map((c) => c.latitude), lons = communes.map((c) => c.longitude);
  const [minLat, maxLat, minLon, maxLon] = [Math.min(...lats) - 0.03, Math.max(...lats) + 0.03, Math.min(...lons) - 0.04, Math.max(...lons) + 0.04];
  const k = Math.cos((minLat + maxLat) / 2 * Math.PI / 180);
  const sx = 620 / ((maxLon - minLon) * k), sy = 440 / (maxLat - minLat), s = Math.min(sx, sy);
  const dx = (620 - (maxLon - minLon) * k * s) / 2, dy = (440 - (maxLat - minLat) * s) / 2;
  return (lon, lat) => [10 + dx + (lon - minLon) * k * s, 450 - dy - (lat - minLat) * s];
}

function drawPlan(bins) {
  const plan = $('plan');
  plan.replaceChildren();
  if (!communes.length) return;
  const p = projection();
  const g = svg('g', { 'aria-hidden': 'true' });
  for (const c of communes) {
    const [x, y] = p(c.longitude, c.latitude);
    g.append(svg('rect', { x: x - 2, y: y - 2, width: 4, height: 4, fill: '#4a5560' }));
    g.append(svg('text', { x: x + 5, y: y - 4, 'font-size': 10, fill: '#4a5560' }, c.name));
  }
  plan.append(g);
  for (const b of bins) {
    const [x, y] = p(b.longitude, b.latitude);
    const level = b.fillingLevel >= b.threshold ? 'high' : b.fillingLevel >= 0.5 ? 'mid' : 'low';
    const alerted = [...openAlerts.values()].some((a) => a.entityId === b.id);
    const c = svg('circle', {
      cx: x.toFixed(1), cy: y.toFixed(1), r: alerted ? 6 : 4,
      fill: `var(--${level})`, stroke: alerted ? '#1b1f24' : 'none', 'stroke-width': alerted ? 2.5 : 0,
      'data-id': b.id, class: `bin ${level}`,
    });
    c.append(svg('title', {}, `${b.id} — ${communeName(b.communeCode)} — ${pct(b.fillingLevel)}${alerted ? ' — alerte ouverte' : ''}`));
    plan.append(c);
  }
  const full = bins.filter((b) => b.fillingLevel >= b.threshold).length;
  $('resume-bacs').textContent = `${bins.length} conteneurs connectés, dont ${full} au-dessus de leur seuil de remplissage ; ${openAlerts.size} alertes ouvertes.`;
}

// ---- Alerts ----------------------------------------------------------------------------
function alertItem(a) {
  return el('li', { 'data-alert-id': a.alertId },
    el('span', { class: `tag ${a.kind.toLowerCase()}` }, KIND[a.kind] || a.kind),
    `${a.entityId} — ${communeName(a.communeCode)}`,
    a.fillingLevel != null ? ` — ${pct(a.fillingLevel)}` : '',
    ` — ${fmtTime(a.dateObserved)}`);
}

function drawAlerts() {
  const list = [...openAlerts.values()].sort((a, b) => b.dateObserved.localeCompare(a.dateObserved));
  $('alertes').replaceChildren(...list.slice(0, 60).map(alertItem));
  const byKind = {};
  for (const a of list) byKind[a.kind] = (byKind[a.kind] || 0) + 1;
  $('resume-alertes').textContent = list.length
    ? `${list.length} alertes ouvertes : ` + Object.entries(byKind).map(([k, n]) => `${n} ${KIND[k] || k}`).join(', ') + '.'
    : 'Aucune alerte ouverte.';
}

function onAlert(a) {
  if (!BIN_KINDS.has(a.kind)) return;
  if (a.state === 'OPEN') openAlerts.set(a.alertId, a); else openAlerts.delete(a.alertId);
  drawAlerts();
}

// ---- Footfall chart ------------------------------------------------------------------
function drawFootfall(rows) {
  const chart = $('courbe');
  chart.replaceChildren();
  const tbody = $('table-frequentation').querySelector('tbody');
  tbody.replaceChildren();
  if (!rows.length) { $('resume-frequentation').textContent = 'Pas encore de mesure.'; return; }
  const zones = [...new Set(rows.map((r) => r.zone))].sort();
  const times = rows.map((r) => Date.parse(r.dateObservedFrom));
  const [t0, t1] = [Math.min(...times), Math.max(...times)];
  // Withheld windows are gaps in the curves (their count is not known here).
  const shown = rows.filter((r) => r.peopleCount != null);
  const max = Math.max(1, ...shown.map((r) => r.peopleCount));
  const x = (t) => 40 + (t1 > t0 ? (t - t0) / (t1 - t0) : 0) * 520;
  const y = (v) => 200 - (v / max) * 180;
  chart.append(svg('line', { x1: 40, y1: 200, x2: 560, y2: 200, stroke: '#4a5560' }));
  chart.append(svg('text', { x: 4, y: 24, 'font-size': 11, fill: '#4a5560' }, String(max)));
  chart.append(svg('text', { x: 4, y: 200, 'font-size': 11, fill: '#4a5560' }, '0'));
  const dashes = ['', '6 3', '2 3', '8 3 2 3'];
  zones.forEach((zone, i) => {
    const zr = shown.filter((r) => r.zone === zone).sort((a, b) => a.dateObservedFrom.localeCompare(b.dateObservedFrom));
    if (!zr.length) return;
    const points = zr.map((r) => `${x(Date.parse(r.dateObservedFrom)).toFixed(1)},${y(r.peopleCount).toFixed(1)}`).join(' ');
    chart.append(svg('polyline', { points, fill: 'none', stroke: '#005a8c', 'stroke-width': 2, 'stroke-dasharray': dashes[i % dashes.length] }));
    const last = zr[zr.length - 1];
    chart.append(svg('text', { x: 566, y: y(last.peopleCount) + 4, 'font-size': 10, fill: '#1b1f24' }, zone.replace(/^za-[a-z]+-/, '')));
  });
  for (const r of [...rows].sort((a, b) => b.dateObservedFrom.localeCompare(a.dateObservedFrom)).slice(0, 24)) {
    const congested = r.congested == null ? count(null, false) : r.congested ? 'oui' : 'non';
    tbody.append(el('tr', {}, el('td', {}, r.zone), el('td', {}, fmtTime(r.dateObservedFrom)), el('td', { class: 'num' }, count(r.peopleCount)), el('td', {}, congested)));
  }
  const latest = rows.filter((r) => Date.parse(r.dateObservedFrom) === t1);
  const withheld = rows.filter((r) => r.suppressed).length;
  $('resume-frequentation').textContent = `Dernière fenêtre (${fmtTime(new Date(t1).toISOString())}) : ` +
    latest.map((r) => `${r.zone} ${countText(r.peopleCount)} personnes`).join(', ') + '.' +
    (withheld ? ` ${withheld} fenêtres de moins de 5 personnes sont masquées (secret statistique).` : '');
}

// ---- Sites, vineyards, reports, ideas ------------------------------------------------
// Sums over the hours shown; hours withheld are counted apart (their values are unknown).
function drawSites(rows) {
  const per = new Map();
  for (const r of rows) {
    const s = per.get(r.site) || { visitors: 0, ar: 0, hiddenVisitors: 0, hiddenAr: 0, code: r.locationCode };
    if (r.visitorCount == null) s.hiddenVisitors += 1; else s.visitors += r.visitorCount;
    if (r.arCheckins == null) s.hiddenAr += 1; else s.ar += r.arCheckins;
    per.set(r.site, s);
  }
  const sum = (n, hidden) => hidden
    ? el('span', {}, String(n), ' + ', el('abbr', { class: 'secret', title: SECRET }, `${hidden} h masquée${hidden > 1 ? 's' : ''}`))
    : String(n);
  const body = [...per.entries()].sort((a, b) => b[1].visitors - a[1].visitors)
    .map(([site, s]) => el('tr', { 'data-site': site }, el('th', { scope: 'row' }, `${site} (${communeName(s.code)})`), el('td', { class: 'num' }, sum(s.visitors, s.hiddenVisitors)), el('td', { class: 'num' }, sum(s.ar, s.hiddenAr))));
  $('sites').querySelector('tbody').replaceChildren(...(body.length ? body : [el('tr', {}, el('td', { colspan: 3 }, 'Pas encore de visite.'))]));
}

// The latest month of the open dataset of collections per commune (the same figures the
// valley publishes).
async function drawCollection() {
  const r = await fetch('/opendata/collecte-conteneurs-mensuelle.ndjson');
  if (!r.ok) throw new Error(`collecte : ${r.status}`);
  const rows = (await r.text()).split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  const month = rows.reduce((m, x) => (x.mois > m ? x.mois : m), '');
  const body = rows.filter((x) => x.mois === month)
    .sort((a, b) => b.vidages - a.vidages || a.communeCode.localeCompare(b.communeCode))
    .map((x) => el('tr', { 'data-commune': x.communeCode }, el('th', { scope: 'row' }, communeName(x.communeCode)),
      el('td', { class: 'num' }, x.vidages),
      el('td', { class: 'num' }, x.remplissageMoyenAuVidage == null ? '—' : `${Math.round(x.remplissageMoyenAuVidage * 100)} %`),
      el('td', { class: 'num' }, x.heuresAuDessusDuSeuil)));
  $('collecte').querySelector('tbody').replaceChildren(...(body.length ? body : [el('tr', {}, el('td', { colspan: 4 }, 'Pas encore de mesure.'))]));
  const name = month ? new Date(month).toLocaleDateString('fr-FR', { month: 'long', year: 'numeric', timeZone: 'UTC' }) : '';
  $('t-collecte').textContent = `Collecte des conteneurs par commune${name ? ` (${name})` : ''}`;
}

// Sensors' health: how many work, and how many have each problem (one may have several).
async function drawSensors() {
  const { sensorHealth } = await gql('{ sensorHealth { problems } }');
  const labels = { SILENT: 'muets', STUCK: 'bloqués', DAMAGED: 'endommagés', LOW_BATTERY: 'pile faible', WEAK_SIGNAL: 'signal faible',
    IMPLAUSIBLE: 'invraisemblables' };
  const working = sensorHealth.filter((h) => h.problems.length === 0).length;
  const rows = [['WORKING', 'en service', working], ...Object.entries(labels).map(([k, label]) =>
    [k, label, sensorHealth.filter((h) => h.problems.includes(k)).length])];
  $('capteurs').querySelector('tbody').replaceChildren(...rows.map(([k, label, n]) =>
    el('tr', { 'data-state': k }, el('th', { scope: 'row' }, label), el('td', { class: 'num' }, n))));
  $('resume-capteurs').textContent = sensorHealth.length
    ? `${working} capteur${working > 1 ? 's' : ''} sur ${sensorHealth.length} en service.`
    : 'Aucun capteur n’a encore émis.';
}

function drawVine(rows, alerts) {
  const latest = new Map();
  for (const r of rows) if (!latest.has(r.station) || latest.get(r.station).day < r.day) latest.set(r.station, r);
  const body = [...latest.values()].sort((a, b) => a.station.localeCompare(b.station)).map((r) => el('tr', { 'data-station': r.station },
    el('th', { scope: 'row' }, r.station), el('td', {}, r.day), el('td', { class: 'num' }, r.growingDegreeDays.toFixed(1)),
    el('td', { class: 'num' }, r.huglinIndex.toFixed(0)), el('td', {}, r.downyMildew310 ? 'conditions réunies' : 'non'),
    el('td', { class: 'num' }, r.gublerThomasIndex)));
  $('vigne').querySelector('tbody').replaceChildren(...(body.length ? body : [el('tr', {}, el('td', { colspan: 6 }, 'Pas encore de journée complète.'))]));
  $('alertes-vigne').replaceChildren(...(alerts.length ? alerts.map((a) => el('li', { 'data-alert-id': a.alertId },
    el('span', { class: `tag ${a.kind.toLowerCase()}` }, KIND[a.kind] || a.kind),
    `${a.entityId}${a.riskLevel ? ` — risque ${RISK[a.riskLevel]}` : ''} — ${fmtTime(a.dateObserved)}`)) : [el('li', {}, 'Aucune alerte gel ou maladie ouverte.')]));
}

function drawReports(edges) {
  $('signalements').replaceChildren(...(edges.length ? edges.map(({ node: r }) => el('li', { 'data-report-id': r.id },
    el('span', { class: `tag ${r.status === 'OPEN' ? 'open' : 'ok'}` }, STATUS[r.status]),
    `${r.serviceName} — ${communeName(r.communeCode)} — ${r.description} — ${fmtTime(r.requestedDatetime)}`)) : [el('li', {}, 'Aucun signalement pour le moment.')]));
}

function drawIdeas(edges) {
  $('idees').replaceChildren(...(edges.length ? edges.map(({ node: i }) => el('li', { 'data-idea-id': i.id },
    el('strong', {}, i.title), ` — ${i.supports} soutien${i.supports > 1 ? 's' : ''} — ${IDEA_STATE[i.state]}`,
    i.eligible ? ' — seuil atteint' : '')) : [el('li', {}, 'Aucune idée pour le moment.')]));
}

const QUERY = `{
  bins { id communeCode fillingLevel threshold latitude longitude }
  fillAlerts(open: true) { alertId kind entityId state dateObserved fillingLevel communeCode }
  footfall(window: "PT5M") { zone dateObservedFrom peopleCount congested suppressed }
  sitePresence { site locationCode hour visitorCount arCheckins suppressed }
  vineIndicators { station day growingDegreeDays huglinIndex downyMildew310 gublerThomasIndex }
  vineAlerts(open: true) { alertId kind entityId dateObserved riskLevel }
  reports(first: 8) { edges { node { id serviceName communeCode description status requestedDatetime } } }
  ideas(orderBy: TRENDING, first: 6) { edges { node { id title supports state eligible } } }
}`;

async function refresh() {
  try {
    if (!communes.length) communes = (await gql('{ communes { code name latitude longitude } }')).communes;
    const d = await gql(QUERY);
    openAlerts = new Map(d.fillAlerts.map((a) => [a.alertId, a]));
    drawAlerts();
    drawPlan(d.bins);
    drawFootfall(d.footfall);
    drawSites(d.sitePresence);
    drawVine(d.vineIndicators, d.vineAlerts);
    drawReports(d.reports.edges);
    drawIdeas(d.ideas.edges);
    await drawCollection();
    await drawSensors();
    $('maj').textContent = new Date().toLocaleTimeString('fr-FR');
    $('maj').setAttribute('datetime', new Date().toISOString());
    document.body.dataset.loaded = 'true';
  } catch (e) {
    $('connexion').textContent = `Erreur de lecture : ${e.message}`;
  }
}

// graphql-transport-ws, the minimum: init, subscribe, next; reconnect with back-off.
function subscribeAlerts(delay = 1000) {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql/ws`, 'graphql-transport-ws');
  ws.onopen = () => ws.send(JSON.stringify({ type: 'connection_init', payload: {} }));
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === 'connection_ack') {
      $('connexion').textContent = 'En direct';
      ws.send(JSON.stringify({ id: 'alertes', type: 'subscribe', payload: { query: 'subscription { alerts { alertId kind entityId state dateObserved fillingLevel communeCode } }' } }));
    } else if (msg.type === 'next' && msg.payload.data) {
      onAlert(msg.payload.data.alerts);
    } else if (msg.type === 'ping') {
      ws.send(JSON.stringify({ type: 'pong' }));
    }
  };
  ws.onclose = () => {
    $('connexion').textContent = 'Reconnexion…';
    setTimeout(() => subscribeAlerts(Math.min(delay * 2, 30000)), delay);
  };
}

refresh();
setInterval(refresh, REFRESH_MS);
subscribeAlerts();
