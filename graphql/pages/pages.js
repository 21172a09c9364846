// The citizens' pages: plain JavaScript on the hub's public GraphQL API, nothing from the
// internet. Text from the API is always set as text (never as HTML). Each page's code runs
// from the `data-page` of its <body>.
"use strict";

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

/** Says `text` to screen readers (and shows it in the status line). */
function announce(text) {
  $("annonce").textContent = text;
}

class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

async function gql(query, variables = {}, token = null) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch("/graphql", {
    method: "POST",
    headers,
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json().catch(() => ({}));
  if (body.errors && body.errors.length) {
    const e = body.errors[0];
    throw new ApiError(e.message, e.extensions && e.extensions.code);
  }
  if (!response.ok) throw new ApiError(`réponse ${response.status}`, "HTTP");
  return body.data;
}

/** This device's citizen token (asked for once, kept by the browser). */
async function token() {
  let t = localStorage.getItem("vallee-jeton");
  if (!t) {
    const data = await gql("mutation { issueCitizenToken { token } }");
    t = data.issueCitizenToken.token;
    localStorage.setItem("vallee-jeton", t);
  }
  return t;
}

/** The reports followed from this device. */
function followed() {
  try {
    return JSON.parse(localStorage.getItem("vallee-signalements") || "[]");
  } catch {
    return [];
  }
}

function remember(id) {
  const ids = followed().filter((x) => x !== id);
  ids.unshift(id);
  localStorage.setItem("vallee-signalements", JSON.stringify(ids.slice(0, 100)));
}

let communesCache = null;
async function communes() {
  if (!communesCache) {
    const data = await gql("{ communes { code name } }");
    communesCache = data.communes.slice().sort((a, b) => a.name.localeCompare(b.name, "fr"));
  }
  return communesCache;
}

async function fillCommunes(...selects) {
  const list = await communes();
  for (const select of selects) {
    for (const c of list) select.append(el("option", { value: c.code }, c.name));
  }
}

function communeName(code) {
  const c = (communesCache || []).find((x) => x.code === code);
  return c ? c.name : code || "toute la vallée";
}

const dateTime = (iso) =>
  new Date(iso).toLocaleString("fr-FR", { dateStyle: "long", timeStyle: "short", timeZone: "Europe/Paris" });
const date = (iso) => new Date(iso).toLocaleDateString("fr-FR", { dateStyle: "long", timeZone: "Europe/Paris" });

const SUBSTATUS = {
  ACKNOWLEDGED: "pris en compte",
  IN_PROGRESS: "en cours",
  SCHEDULED: "intervention programmée",
  FIXED: "résolu",
  DUPLICATE: "doublon",
  NOT_RESPONSIBLE: "hors compétence",
};
const status = (s, sub) =>
  (s === "CLOSED" ? "Clos" : "Ouvert") + (sub ? ` (${SUBSTATUS[sub] || sub.toLowerCase()})` : "");

// ---- The valley's map, drawn from the communes' boundaries ----

let boundaries = null;
async function valleyMap(svg) {
  if (!boundaries) boundaries = await (await fetch("/communes.geojson")).json();
  const rings = (g) => (g.type === "Polygon" ? [g.coordinates] : g.coordinates);
  let [minLon, minLat, maxLon, maxLat] = [180, 90, -180, -90];
  for (const f of boundaries.features)
    for (const poly of rings(f.geometry))
      for (const [lon, lat] of poly[0]) {
        minLon = Math.min(minLon, lon); maxLon = Math.max(maxLon, lon);
        minLat = Math.min(minLat, lat); maxLat = Math.max(maxLat, lat);
      }
  const k = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
  const scale = 400 / ((maxLon - minLon) * k);
  const height = (maxLat - minLat) * scale;
  svg.setAttribute("viewBox", `0 0 400 ${height.toFixed(1)}`);
  const project = (lon, lat) => [(lon - minLon) * k * scale, (maxLat - lat) * scale];
  const unproject = (x, y) => [minLon + x / (k * scale), maxLat - y / scale];
  const ns = "http://www.w3.org/2000/svg";
  const paths = {};
  for (const f of boundaries.features) {
    const d = rings(f.geometry)
      .map((poly) => poly.map((ring) => "M" + ring.map(([lon, lat]) => project(lon, lat).map((v) => v.toFixed(1)).join(",")).join("L") + "Z").join(""))
      .join("");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    const title = document.createElementNS(ns, "title");
    title.textContent = f.properties.name;
    path.append(title);
    svg.append(path);
    paths[f.properties.insee_code] = path;
  }
  const dot = (lon, lat, cls, label) => {
    const [x, y] = project(lon, lat);
    const c = document.createElementNS(ns, "circle");
    c.setAttribute("cx", x.toFixed(1)); c.setAttribute("cy", y.toFixed(1));
    c.setAttribute("r", cls === "here" ? 6 : 5); c.setAttribute("class", cls);
    if (label) {
      const t = document.createElementNS(ns, "title");
      t.textContent = label;
      c.append(t);
    }
    svg.append(c);
    return c;
  };
  // The commune holding a point, by the same even-odd rule as the hub.
  const inside = (ring, lon, lat) => {
    let odd = false;
    for (let i = 0; i + 1 < ring.length; i++) {
      const [ax, ay] = ring[i], [bx, by] = ring[i + 1];
      if ((ay > lat) !== (by > lat) && lon < ax + ((lat - ay) / (by - ay)) * (bx - ax)) odd = !odd;
    }
    return odd;
  };
  const communeAt = (lon, lat) => {
    const f = boundaries.features.find((f) =>
      rings(f.geometry).some((poly) => poly.filter((r) => inside(r, lon, lat)).length % 2 === 1));
    return f ? f.properties.insee_code : null;
  };
  const highlight = (code) => {
    for (const [c, p] of Object.entries(paths)) p.classList.toggle("chosen", c === code);
  };
  return { svg, project, unproject, dot, communeAt, highlight };
}

// ---- Signaler ----

async function signaler() {
  const form = $("signalement");
  const select = $("service");
  const state = { point: null, marker: null };
  const [{ services }] = await Promise.all([
    gql("{ services { serviceCode serviceName group keywords } }"),
    fillCommunes($("commune")),
  ]);
  const fill = (filter) => {
    const words = filter.trim().toLowerCase();
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "" }, "Choisir un service"));
    const groups = {};
    for (const s of services) {
      const text = [s.serviceName, s.group, ...s.keywords].join(" ").toLowerCase();
      if (words && !text.includes(words)) continue;
      (groups[s.group] = groups[s.group] || []).push(s);
    }
    for (const [group, list] of Object.entries(groups)) {
      select.append(el("optgroup", { label: group }, list.map((s) => el("option", { value: s.serviceCode }, s.serviceName))));
    }
    select.value = chosen;
    const n = Object.values(groups).flat().length;
    announce(`${n} service${n > 1 ? "s" : ""} correspond${n > 1 ? "ent" : ""} à la recherche.`);
  };
  fill("");
  $("recherche-service").addEventListener("input", (e) => fill(e.target.value));

  const map = await valleyMap($("carte"));
  map.svg.addEventListener("click", (e) => {
    const box = map.svg.getBoundingClientRect();
    const view = map.svg.viewBox.baseVal;
    const x = ((e.clientX - box.left) / box.width) * view.width;
    const y = ((e.clientY - box.top) / box.height) * view.height;
    const [lon, lat] = map.unproject(x, y);
    choosePoint(lon, lat);
  });
  const choosePoint = (lon, lat) => {
    const code = map.communeAt(lon, lat);
    if (state.marker) state.marker.remove();
    if (!code) {
      state.point = null;
      $("position").textContent = "Cet endroit est hors de la vallée : choisissez un point dans une des 28 communes.";
      return;
    }
    state.point = { lat, long: lon };
    state.marker = map.dot(lon, lat, "here", "Endroit choisi");
    map.highlight(code);
    $("commune").value = code;
    $("position").textContent = `Position choisie : ${communeName(code)} (${lat.toFixed(5)}, ${lon.toFixed(5)}).`;
    nearby();
  };
  select.addEventListener("change", nearby);

  async function nearby() {
    const box = $("doublons");
    if (!state.point || !select.value) {
      box.hidden = true;
      return;
    }
    const d = 0.0005;
    const { lat, long } = state.point;
    const data = await gql(
      `query($f: ReportFilter) { reports(filter: $f, first: 5) { edges { node { id serviceName description requestedDatetime } } } }`,
      { f: { serviceCode: select.value, status: "OPEN", bbox: [long - d * 1.4, lat - d, long + d * 1.4, lat + d] } },
    ).catch(() => null);
    const list = data ? data.reports.edges.map((e) => e.node) : [];
    box.hidden = list.length === 0;
    $("doublons-liste").replaceChildren(...list.map((r) => el("div", { class: "card" },
      el("p", {}, el("strong", {}, r.serviceName || ""), ` — signalé le ${dateTime(r.requestedDatetime)}`),
      el("p", {}, r.description),
      el("button", { type: "button", class: "secondary", onclick: (e) => concerned(r.id, e.target) }, "Déjà signalé — je suis concerné aussi"))));
    if (list.length) announce(`${list.length} signalement${list.length > 1 ? "s" : ""} semblable${list.length > 1 ? "s" : ""} tout près.`);
  }

  async function concerned(id, button) {
    button.disabled = true;
    try {
      await gql("mutation($id: ID!) { followReport(id: $id) { report { id } } }", { id }, await token());
      remember(id);
      button.replaceWith(el("p", {}, "C'est noté : vous suivez ce signalement. ", el("a", { href: "/mes-signalements" }, "Voir mes signalements")));
      announce("Vous suivez ce signalement.");
    } catch (e) {
      button.disabled = false;
      announce(`Impossible de suivre ce signalement : ${e.message}`);
    }
  }

  const fail = (field, message) => {
    const p = $(`erreur-${field}`);
    p.textContent = message;
    p.hidden = !message;
    const input = { service: select, lieu: $("commune"), description: $("description"), courriel: $("courriel"), photos: $("photos") }[field];
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    return message ? input : null;
  };

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const email = $("courriel").value.trim();
    const problems = [
      fail("service", select.value ? "" : "Choisissez le service concerné."),
      fail("lieu", state.point || $("commune").value ? "" : "Touchez la carte ou choisissez la commune."),
      fail("description", $("description").value.trim() ? "" : "Décrivez le problème."),
      fail("courriel", !email || /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email) ? "" : "Cette adresse électronique n'est pas valide (exemple : nom@exemple.fr)."),
      fail("photos", photoProblem([...$("photos").files])),
    ].filter(Boolean);
    if (problems.length) {
      announce(`Le formulaire contient ${problems.length} erreur${problems.length > 1 ? "s" : ""}.`);
      problems[0].focus();
      return;
    }
    const input = { serviceCode: select.value, description: $("description").value.trim() };
    if (state.point) Object.assign(input, state.point);
    else input.addressString = [$("adresse").value.trim(), communeName($("commune").value)].filter(Boolean).join(", ");
    if (email) input.contact = { email };
    const button = $("envoyer");
    button.disabled = true;
    announce("Envoi du signalement…");
    try {
      const files = [...$("photos").files];
      if (files.length) {
        announce(`Envoi de ${files.length} photo${files.length > 1 ? "s" : ""}…`);
        input.photos = [];
        for (const f of files) input.photos.push(await sendPhoto(f));
      }
      const t = await token();
      const data = await gql(
        `mutation($input: SubmitReportInput!) { submitReport(input: $input) {
           report { id serviceName agencyResponsible expectedDatetime communeCode } } }`,
        { input }, t);
      const r = data.submitReport.report;
      await gql("mutation($id: ID!) { followReport(id: $id) { report { id } } }", { id: r.id }, t).catch(() => null);
      remember(r.id);
      form.hidden = true;
      $("confirmation-texte").textContent =
        `Votre signalement n° ${r.id} (${r.serviceName}, ${communeName(r.communeCode)}) est transmis à : ${r.agencyResponsible}. ` +
        `Réponse prévue avant le ${date(r.expectedDatetime)}.` + (email ? " Vous serez prévenu par courriel." : "");
      const done = $("confirmation");
      done.hidden = false;
      done.dataset.reportId = r.id;
      done.focus();
      announce("Signalement enregistré.");
    } catch (err) {
      button.disabled = false;
      const p = $("erreur-description");
      p.textContent = `Le signalement n'a pas pu être envoyé : ${err.message}`;
      p.hidden = false;
      announce(p.textContent);
    }
  });
}

/** Why the chosen photos cannot be sent ("" when they can). */
function photoProblem(files) {
  if (files.length > 3) return "Trois photos au plus.";
  const wrong = files.find((f) => !["image/jpeg", "image/png", "image/webp"].includes(f.type));
  if (wrong) return `${wrong.name} n'est pas une photo JPEG, PNG ou WebP.`;
  const big = files.find((f) => f.size > 10 * 1024 * 1024);
  if (big) return `${big.name} dépasse 10 Mo.`;
  return "";
}

/** Sends one photo to the hub; its id. */
async function sendPhoto(file) {
  const response = await fetch("/media/v1/photos", { method: "POST", headers: { "content-type": file.type }, body: file });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(`photo ${file.name} refusée : ${body.error || `réponse ${response.status}`}`, "HTTP");
  return body.photoId;
}

// ---- Mes signalements ----

async function mesSignalements() {
  const box = $("mes-signalements");
  // The link of an e-mail adds its report to this device's list.
  const linked = new URLSearchParams(location.search).get("suivre");
  if (linked && /^[A-Za-z0-9-]{1,100}$/.test(linked)) remember(linked);
  const ids = followed();
  await communes();
  if (!ids.length) {
    box.replaceChildren(el("p", {}, "Aucun signalement envoyé ou suivi depuis cet appareil."));
    box.setAttribute("aria-busy", "false");
    return;
  }
  const t = localStorage.getItem("vallee-jeton");
  const cards = [];
  for (const id of ids) {
    try {
      const { report: r } = await gql(
        `query($id: ID!) { report(id: $id) { id serviceName description status substatus statusNotes communeCode
           agencyResponsible requestedDatetime expectedDatetime followers photos { id url }
           history { status substatus statusNotes at } } }`, { id }, t);
      cards.push(el("article", { class: "card", "data-report-id": r.id, "aria-labelledby": `r-${r.id}` },
        el("h2", { id: `r-${r.id}` }, `${r.serviceName || "Signalement"} — ${communeName(r.communeCode)}`),
        el("p", {}, el("span", { class: `state ${r.status === "CLOSED" ? "closed" : "open"}` }, status(r.status, r.substatus)),
          ` · ${r.agencyResponsible} · ${r.followers} personne${r.followers > 1 ? "s" : ""} concernée${r.followers > 1 ? "s" : ""}`),
        el("p", {}, r.description),
        r.photos.length ? el("div", { class: "photos" }, r.photos.map((p, k) =>
          el("img", { src: p.url, alt: `Photo ${k + 1} jointe au signalement`, loading: "lazy", "data-photo-id": p.id }))) : null,
        r.statusNotes ? el("p", {}, el("strong", {}, "Réponse : "), r.statusNotes) : null,
        el("p", { class: "meta" }, `Signalé le ${dateTime(r.requestedDatetime)} · réponse prévue avant le ${date(r.expectedDatetime)} · n° ${r.id}`),
        el("details", {}, el("summary", {}, "Historique"),
          el("ol", { class: "history" }, r.history.map((h) =>
            el("li", {}, `${dateTime(h.at)} : ${status(h.status, h.substatus)}`, h.statusNotes ? ` — ${h.statusNotes}` : ""))))));
    } catch (e) {
      cards.push(el("article", { class: "card" }, el("p", {}, `Le signalement ${id} n'est plus disponible (${e.message}).`)));
    }
  }
  box.replaceChildren(...cards);
  box.setAttribute("aria-busy", "false");
  announce(`${cards.length} signalement${cards.length > 1 ? "s" : ""}.`);
}

// ---- Boîte à idées ----

const THEMES = {
  DIGITAL_SERVICES: "Services numériques",
  DIGITAL_COMMUNICATION: "Communication numérique",
  LOCAL_ECONOMY: "Économie locale",
  WINE_SECTOR: "Filière viticole",
  TOURISM_CULTURE: "Tourisme et culture",
  DIGITAL_FOR_ALL: "Numérique pour tous",
};
const IDEA_STATES = {
  NOT_ANSWERED: "en attente de réponse",
  EVALUATING: "à l'étude",
  ACCEPTED: "retenue",
  REJECTED: "non retenue",
  WITHDRAWN: "retirée",
};

async function idees() {
  await fillCommunes($("idee-commune"), $("idee-nouvelle-commune"));
  for (const [code, label] of Object.entries(THEMES)) {
    $("idee-theme").append(el("option", { value: code }, label));
    $("idee-nouveau-theme").append(el("option", { value: code }, label));
  }
  const list = $("idees");
  const load = async () => {
    list.setAttribute("aria-busy", "true");
    const filter = {};
    if ($("idee-commune").value) filter.communeCode = $("idee-commune").value;
    if ($("idee-theme").value) filter.theme = $("idee-theme").value;
    const t = localStorage.getItem("vallee-jeton");
    const data = await gql(
      `query($f: IdeaFilter, $o: IdeaOrder) { ideas(filter: $f, orderBy: $o, first: 50) { edges { node {
         id title body theme communeCode state answer supports supportThreshold eligible supportedByMe mine
         comments { id body createdAt } } } } }`,
      { f: filter, o: $("idee-ordre").value }, t);
    const ideas = data.ideas.edges.map((e) => e.node);
    list.replaceChildren(...(ideas.length ? ideas.map(card) : [el("p", {}, "Aucune idée pour ces critères.")]));
    list.setAttribute("aria-busy", "false");
    announce(`${ideas.length} idée${ideas.length > 1 ? "s" : ""}.`);
  };
  const act = async (query, variables, message) => {
    try {
      await gql(query, variables, await token());
      announce(message);
      await load();
    } catch (e) {
      announce(`Impossible : ${e.message}`);
    }
  };
  const card = (i) => {
    const commentInput = el("textarea", { id: `c-${i.id}`, maxlength: 5000 });
    return el("article", { class: "card", "data-idea-id": i.id, "aria-labelledby": `i-${i.id}` },
      el("h3", { id: `i-${i.id}` }, i.title),
      el("p", { class: "meta" }, `${THEMES[i.theme] || i.theme} · ${communeName(i.communeCode)} · ${IDEA_STATES[i.state] || i.state}`),
      el("p", {}, i.body),
      el("p", {}, `${i.supports} soutien${i.supports > 1 ? "s" : ""} sur ${i.supportThreshold} nécessaires`,
        i.eligible ? " — seuil atteint : la collectivité répondra." : ""),
      i.answer ? el("p", {}, el("strong", {}, "Réponse de la collectivité : "), i.answer) : null,
      el("div", { class: "actions" },
        i.mine ? null : i.supportedByMe
          ? el("button", { type: "button", class: "secondary", onclick: () => act("mutation($id: ID!) { withdrawSupport(id: $id) { idea { id } } }", { id: i.id }, "Soutien retiré.") }, "Retirer mon soutien")
          : el("button", { type: "button", onclick: () => act("mutation($id: ID!) { supportIdea(id: $id) { idea { id } } }", { id: i.id }, "Idée soutenue.") }, "Soutenir"),
        el("button", { type: "button", class: "secondary", onclick: () => act("mutation($id: ID!) { flagIdea(id: $id, reason: OFFENSIVE) { idea { id } } }", { id: i.id }, "Merci : la modération va regarder.") }, "Signaler un abus")),
      el("details", {}, el("summary", {}, `Commentaires (${i.comments.length})`),
        el("ul", {}, i.comments.map((c) => el("li", { "data-comment-id": c.id }, c.body, el("span", { class: "meta" }, ` — ${dateTime(c.createdAt)} `),
          el("button", { type: "button", class: "secondary", "data-action": "flag-comment", "aria-label": "Signaler ce commentaire comme abusif",
            onclick: () => act("mutation($id: ID!, $c: ID!) { flagComment(id: $id, commentId: $c, reason: OFFENSIVE) { idea { id } } }",
              { id: i.id, c: c.id }, "Merci : la modération va regarder ce commentaire.") }, "Signaler")))),
        el("label", { for: `c-${i.id}` }, "Votre commentaire"), commentInput,
        el("div", { class: "actions" }, el("button", { type: "button", onclick: () => commentInput.value.trim() &&
          act("mutation($id: ID!, $input: CommentIdeaInput!) { commentIdea(id: $id, input: $input) { comment { id } } }",
            { id: i.id, input: { body: commentInput.value.trim() } }, "Commentaire publié.") }, "Commenter"))));
  };
  for (const id of ["idee-commune", "idee-theme", "idee-ordre"]) $(id).addEventListener("change", load);
  $("proposer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const title = $("idee-titre").value.trim(), body = $("idee-texte").value.trim();
    const error = $("erreur-idee");
    if (!title || !body) {
      error.textContent = "Donnez un titre et décrivez votre idée.";
      error.hidden = false;
      (title ? $("idee-texte") : $("idee-titre")).focus();
      announce(error.textContent);
      return;
    }
    error.hidden = true;
    const input = { title, body, theme: $("idee-nouveau-theme").value };
    if ($("idee-nouvelle-commune").value) input.communeCode = $("idee-nouvelle-commune").value;
    await act("mutation($input: SubmitIdeaInput!) { submitIdea(input: $input) { idea { id } } }", { input }, "Idée proposée. Merci !");
    $("proposer").reset();
  });
  await load();
}

// ---- Petite enfance ----

async function petiteEnfance() {
  await fillCommunes($("creche-commune"));
  const map = await valleyMap($("creche-carte"));
  const search = async () => {
    const age = $("creche-age").value;
    const variables = {
      c: $("creche-commune").value || null,
      a: age === "" ? null : Number(age),
      v: $("creche-libres").checked,
    };
    const data = await gql(
      `query($c: String, $a: Int, $v: Boolean!) { childcareFacilities(communeCode: $c, ageMonths: $a, withVacancies: $v) {
         id name communeCode address latitude longitude openingHours contact website capacity ageMinMonths ageMaxMonths vacancies vacanciesUpdatedAt } }`,
      variables);
    const found = data.childcareFacilities;
    map.svg.querySelectorAll("circle").forEach((c) => c.remove());
    map.highlight(variables.c);
    $("creches").replaceChildren(...found.map((p) => {
      if (p.latitude != null && p.longitude != null) map.dot(p.longitude, p.latitude, "place", p.name);
      const ages = p.ageMinMonths != null || p.ageMaxMonths != null
        ? `de ${p.ageMinMonths ?? 0} à ${p.ageMaxMonths ?? 72} mois` : "tous âges";
      return el("article", { class: "card", "data-place-id": p.id, "aria-labelledby": `p-${p.id}` },
        el("h2", { id: `p-${p.id}` }, p.name),
        el("p", {}, el("strong", {}, p.vacancies == null ? "Places libres : non déclarées" : `${p.vacancies} place${p.vacancies > 1 ? "s" : ""} libre${p.vacancies > 1 ? "s" : ""}`),
          p.vacanciesUpdatedAt ? ` (au ${dateTime(p.vacanciesUpdatedAt)})` : ""),
        el("p", {}, `${communeName(p.communeCode)}${p.address ? ` · ${p.address}` : ""}`),
        el("p", { class: "meta" }, `Capacité ${p.capacity ?? "non précisée"} · enfants ${ages}${p.openingHours ? ` · horaires : ${p.openingHours}` : ""}`),
        p.contact ? el("p", {}, `Contact : ${p.contact}`) : null,
        p.website ? el("p", {}, el("a", { href: p.website, rel: "noopener" }, "Site de la structure")) : null);
    }));
    const n = found.length;
    $("creche-resume").textContent = n ? `${n} structure${n > 1 ? "s" : ""} trouvée${n > 1 ? "s" : ""}.` : "Aucune structure pour ces critères.";
  };
  $("recherche-creche").addEventListener("submit", (e) => {
    e.preventDefault();
    search().catch((err) => announce(`Recherche impossible : ${err.message}`));
  });
  await search();
}

// ---- Lieux et ateliers ----

async function lieux() {
  await fillCommunes($("lieux-commune"));
  const show = async () => {
    const c = $("lieux-commune").value || null;
    const q = `query($k: PlaceKind, $c: String) { places(kind: $k, communeCode: $c) {
      id name communeCode address openingHours contact website description startsAt endsAt seats } }`;
    for (const [kind, box] of [["TRAINING_SESSION", "ateliers"], ["DIGITAL_GALLERY", "galerie"], ["COWORKING", "coworking"]]) {
      const { places } = await gql(q, { k: kind, c });
      const now = Date.now();
      const shown = places.filter((p) => kind !== "TRAINING_SESSION" || !p.endsAt || Date.parse(p.endsAt) >= now);
      $(box).replaceChildren(...(shown.length ? shown.map((p) => el("article", { class: "card", "data-place-id": p.id },
        el("h3", {}, p.name),
        p.startsAt ? el("p", {}, el("strong", {}, dateTime(p.startsAt)), p.seats != null ? ` · ${p.seats} place${p.seats > 1 ? "s" : ""}` : "") : null,
        el("p", {}, `${communeName(p.communeCode)}${p.address ? ` · ${p.address}` : ""}`),
        p.description ? el("p", {}, p.description) : null,
        p.openingHours ? el("p", { class: "meta" }, `Horaires : ${p.openingHours}`) : null,
        p.contact ? el("p", { class: "meta" }, `Contact : ${p.contact}`) : null,
        p.website ? el("p", {}, el("a", { href: p.website, rel: "noopener" }, "En savoir plus")) : null))
        : [el("p", {}, "Rien pour l'instant dans cette commune.")]));
    }
  };
  $("lieux-commune").addEventListener("change", () => show().catch((e) => announce(e.message)));
  await show();
}

// ---- Gestion (staff) ----

const TEMPLATES = [
  ["", "Réponses types…"],
  ["Merci pour votre signalement : il est pris en compte par nos services.", "Pris en compte"],
  ["Une intervention est programmée dans les prochains jours.", "Intervention programmée"],
  ["Le problème est résolu. Merci de nous l'avoir signalé.", "Résolu"],
  ["Ce point ne relève pas de notre compétence : nous le transmettons au service concerné.", "Hors compétence"],
];

async function gestion() {
  const staffToken = () => sessionStorage.getItem("vallee-agent");
  const run = (query, variables) => gql(query, variables, staffToken());
  await communes();
  $("connexion-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    sessionStorage.setItem("vallee-agent", $("jeton-agent").value.trim());
    $("jeton-agent").value = "";
    await enter();
  });
  $("deconnexion").addEventListener("click", () => {
    sessionStorage.removeItem("vallee-agent");
    $("espace").hidden = true;
    $("connexion").hidden = false;
    announce("Vous êtes déconnecté.");
  });

  async function enter() {
    const error = $("erreur-connexion");
    let me = null;
    if (staffToken()) me = await run("{ me { kind name communeCode } }").then((d) => d.me).catch(() => null);
    if (!me || me.kind !== "STAFF") {
      sessionStorage.removeItem("vallee-agent");
      if ($("connexion").dataset.tried) {
        error.textContent = "Ce jeton n'est pas celui d'un agent.";
        error.hidden = false;
        $("jeton-agent").focus();
        announce(error.textContent);
      }
      $("connexion").dataset.tried = "true";
      return;
    }
    error.hidden = true;
    $("connexion").hidden = true;
    $("espace").hidden = false;
    $("agent").textContent = `Connecté : ${me.name} — ${me.communeCode ? `Mairie de ${communeName(me.communeCode)}` : "Communauté de communes"}`;
    const communeSelect = $("file-commune");
    if (communeSelect.options.length === 1) {
      for (const c of communesCache) {
        if (!me.communeCode || c.code === me.communeCode) communeSelect.append(el("option", { value: c.code }, c.name));
      }
      const { services } = await gql("{ services { serviceCode serviceName } }");
      for (const sv of services) $("file-service").append(el("option", { value: sv.serviceCode }, sv.serviceName));
      communeSelect.addEventListener("change", queue);
      $("file-service").addEventListener("change", queue);
    }
    state.me = me;
    await Promise.all([queue(), moderation(), childcare(), collection(), sensors(), partners(), places()]);
    announce(`Connecté en tant que ${me.name}.`);
  }
  const state = { me: null, map: null };

  async function queue() {
    const filter = { status: "OPEN" };
    const commune = $("file-commune").value || state.me.communeCode;
    if (commune) filter.communeCode = commune;
    if ($("file-service").value) filter.serviceCode = $("file-service").value;
    const data = await run(
      `query($f: ReportFilter) { reports(filter: $f, orderBy: DUE_FIRST, first: 100) { edges { node {
         id serviceCode serviceName description communeCode addressString requestedDatetime expectedDatetime
         status substatus statusNotes followers lat long photos { id url state } } } } }`, { f: filter });
    const reports = data.reports.edges.map((e) => e.node);
    if (!state.map) state.map = await valleyMap($("file-carte"));
    state.map.svg.querySelectorAll("circle").forEach((c) => c.remove());
    state.map.highlight(filter.communeCode);
    for (const r of reports) {
      const late = Date.parse(r.expectedDatetime) < Date.now();
      state.map.dot(r.long, r.lat, "here", `${r.serviceName} — ${lateness(r)}`).dataset.reportId = r.id;
      if (!late) state.map.svg.lastChild.setAttribute("class", "place");
    }
    $("file-resume").textContent = `${reports.length} signalement${reports.length > 1 ? "s" : ""} ouvert${reports.length > 1 ? "s" : ""}.`;
    $("file").replaceChildren(...reports.map((r) => reportCard(r, reports)));
  }

  const PHOTO_STATES = { PENDING: "à vérifier", ACCEPTED: "publiée", HIDDEN: "masquée" };

  function lateness(r) {
    const days = Math.floor((Date.now() - Date.parse(r.expectedDatetime)) / 86400000);
    return days >= 0 ? `En retard de ${days + 1} jour${days ? "s" : ""}` : `À traiter avant le ${date(r.expectedDatetime)}`;
  }

  function reportCard(r, all) {
    const sub = el("select", { id: `sub-${r.id}` },
      Object.entries(SUBSTATUS).filter(([k]) => k !== "DUPLICATE").map(([k, v]) => el("option", { value: k, selected: k === r.substatus }, v)));
    const notes = el("textarea", { id: `note-${r.id}`, maxlength: 5000 }, r.statusNotes || "");
    const template = el("select", { id: `modele-${r.id}`, onchange: (e) => { if (e.target.value) notes.value = e.target.value; } },
      TEMPLATES.map(([text, label]) => el("option", { value: text }, label)));
    const twins = all.filter((o) => o.id !== r.id && o.serviceCode === r.serviceCode);
    const into = el("select", { id: `doublon-${r.id}` }, el("option", { value: "" }, "Choisir le signalement d'origine"),
      twins.map((o) => el("option", { value: o.id }, `${o.id.slice(0, 8)} — ${communeName(o.communeCode)}, ${dateTime(o.requestedDatetime)}`)));
    const act = async (query, variables, message) => {
      try {
        await run(query, variables);
        announce(message);
        await queue();
      } catch (e) {
        announce(`Action impossible : ${e.message}`);
      }
    };
    const update = (status) => act(
      "mutation($id: ID!, $input: UpdateReportStatusInput!) { updateReportStatus(id: $id, input: $input) { report { id } } }",
      { id: r.id, input: { status, substatus: sub.value, statusNotes: notes.value.trim() || null } },
      status === "CLOSED" ? "Signalement clos." : "Signalement mis à jour.");
    const contact = el("p", {}, el("button", { type: "button", class: "secondary", onclick: async (e) => {
      const d = await run("query($id: ID!) { report(id: $id) { contact { email phone firstName lastName } } }", { id: r.id });
      const c = d.report.contact;
      e.target.parentElement.replaceChildren(c ? `Contact : ${[c.firstName, c.lastName, c.email, c.phone].filter(Boolean).join(" · ")}` : "Aucun contact laissé.");
    } }, "Voir le contact (consultation tracée)"));
    return el("article", { class: "card", "data-report-id": r.id, "aria-labelledby": `g-${r.id}` },
      el("h3", { id: `g-${r.id}` }, `${r.serviceName} — ${communeName(r.communeCode)}`),
      el("p", {}, el("strong", {}, lateness(r)), ` · ${status(r.status, r.substatus)} · ${r.followers} personne${r.followers > 1 ? "s" : ""} concernée${r.followers > 1 ? "s" : ""}`),
      el("p", {}, r.description),
      el("p", { class: "meta" }, [r.addressString, `signalé le ${dateTime(r.requestedDatetime)}`, `n° ${r.id}`].filter(Boolean).join(" · ")),
      r.photos.length ? el("div", { class: "photos" }, r.photos.map((p, k) => photoCard(r, p, k, act))) : null,
      contact,
      el("details", {}, el("summary", {}, "Traiter"),
        el("label", { for: `sub-${r.id}` }, "Étape"), sub,
        el("label", { for: `modele-${r.id}` }, "Réponse type"), template,
        el("label", { for: `note-${r.id}` }, "Message à l'habitant"), notes,
        el("div", { class: "actions" },
          el("button", { type: "button", class: "secondary", "data-action": "update", onclick: () => update("OPEN") }, "Mettre à jour"),
          el("button", { type: "button", "data-action": "close", onclick: () => update("CLOSED") }, "Clore")),
        twins.length ? [el("label", { for: `doublon-${r.id}` }, "C'est un doublon de"), into,
          el("div", { class: "actions" }, el("button", { type: "button", class: "secondary", "data-action": "merge", onclick: () => into.value &&
            act("mutation($id: ID!, $into: ID!) { mergeReport(id: $id, into: $into) { report { id } } }", { id: r.id, into: into.value },
              "Doublon fusionné : ses abonnés suivent le signalement d'origine.") }, "Fusionner"))] : null));
  }

  // A photo as staff see it (fetched with the agent's token: pending and hidden photos are
  // not public), with the buttons that show or hide it.
  function photoCard(r, p, k, act) {
    const img = el("img", { alt: `Photo ${k + 1} du signalement (${PHOTO_STATES[p.state]})`, "data-photo-id": p.id });
    fetch(p.url, { headers: { authorization: `Bearer ${staffToken()}` } })
      .then((res) => (res.ok ? res.blob() : null))
      .then((b) => {
        if (!b) return;
        const url = URL.createObjectURL(b);
        img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
        img.src = url;
      })
      .catch(() => null);
    const moderate = (visible) => act(
      "mutation($id: ID!, $p: ID!, $v: Boolean!) { moderateReportPhoto(id: $id, photoId: $p, visible: $v) { report { id } } }",
      { id: r.id, p: p.id, v: visible }, visible ? "Photo publiée." : "Photo masquée.");
    return el("figure", { class: "photo", "data-photo-state": p.state }, img,
      el("figcaption", {}, `Photo ${k + 1} : ${PHOTO_STATES[p.state]} `,
        p.state !== "ACCEPTED" ? el("button", { type: "button", class: "secondary", "data-action": "accept-photo", onclick: () => moderate(true) }, "Publier") : null,
        p.state !== "HIDDEN" ? el("button", { type: "button", class: "secondary", "data-action": "hide-photo", onclick: () => moderate(false) }, "Masquer") : null));
  }

  async function moderation() {
    const data = await run(`{ ideas(orderBy: NEWEST, first: 100) { edges { node {
      id title body communeCode state answer flags hidden supports supportThreshold eligible
      comments { id body createdAt hidden flags } } } } }`);
    const ideas = data.ideas.edges.map((e) => e.node)
      .filter((i) => !state.me.communeCode || i.communeCode === state.me.communeCode);
    const flagged = (i) => i.flags + i.comments.reduce((n, c) => n + c.flags, 0);
    ideas.sort((a, b) => (flagged(b) - flagged(a)) || (Number(b.eligible) - Number(a.eligible)));
    $("moderation").replaceChildren(...(ideas.length ? ideas.map((i) => {
      const stateSelect = el("select", { id: `etat-${i.id}` }, Object.entries(IDEA_STATES).filter(([k]) => k !== "WITHDRAWN")
        .map(([k, v]) => el("option", { value: k, selected: k === i.state }, v)));
      const answer = el("textarea", { id: `reponse-${i.id}`, maxlength: 5000 }, i.answer || "");
      const act = async (query, variables, message) => {
        try { await run(query, variables); announce(message); await moderation(); } catch (e) { announce(`Action impossible : ${e.message}`); }
      };
      return el("article", { class: "card", "data-idea-id": i.id, "aria-labelledby": `m-${i.id}` },
        el("h3", { id: `m-${i.id}` }, i.title),
        el("p", {}, `${communeName(i.communeCode)} · ${i.flags} signalement${i.flags > 1 ? "s" : ""} d'abus · ${i.hidden ? "masquée" : "visible"} · ${i.supports}/${i.supportThreshold} soutiens`),
        el("p", {}, i.body),
        el("div", { class: "actions" }, el("button", { type: "button", class: "secondary", "data-action": "moderate", onclick: () =>
          act("mutation($id: ID!, $input: ModerateIdeaInput!) { moderateIdea(id: $id, input: $input) { idea { id } } }",
            { id: i.id, input: { hidden: !i.hidden } }, i.hidden ? "Idée rendue visible." : "Idée masquée.") }, i.hidden ? "Rendre visible" : "Masquer")),
        i.comments.length ? el("details", {}, el("summary", {}, `Commentaires (${i.comments.length})`),
          el("ul", {}, [...i.comments].sort((a, b) => b.flags - a.flags).map((c) => el("li", { "data-comment-id": c.id, "data-flags": c.flags },
            `${c.body} — ${dateTime(c.createdAt)}${c.flags ? ` · signalé ${c.flags} fois` : ""}${c.hidden ? " (masqué)" : ""} `,
            el("button", { type: "button", class: "secondary", "data-action": "moderate-comment", onclick: () =>
              act("mutation($id: ID!, $c: ID!, $input: ModerateIdeaInput!) { moderateComment(id: $id, commentId: $c, input: $input) { idea { id } } }",
                { id: i.id, c: c.id, input: { hidden: !c.hidden } }, c.hidden ? "Commentaire rendu visible." : "Commentaire masqué.") },
              c.hidden ? "Rendre visible" : "Masquer"))))) : null,
        el("details", {}, el("summary", {}, "Répondre"),
          el("label", { for: `etat-${i.id}` }, "Décision"), stateSelect,
          el("label", { for: `reponse-${i.id}` }, "Réponse officielle"), answer,
          el("div", { class: "actions" }, el("button", { type: "button", onclick: () =>
            act("mutation($id: ID!, $input: AnswerIdeaInput!) { answerIdea(id: $id, input: $input) { idea { id } } }",
              { id: i.id, input: { state: stateSelect.value, answer: answer.value.trim() || null } }, "Réponse publiée.") }, "Publier la réponse"))));
    }) : [el("p", {}, "Aucune idée dans votre périmètre.")]));
  }

  async function childcare() {
    const data = await run("query($c: String) { childcareFacilities(communeCode: $c) { id name communeCode vacancies capacity } }",
      { c: state.me.communeCode });
    $("places-libres").replaceChildren(...(data.childcareFacilities.length ? data.childcareFacilities.map((p) => {
      const input = el("input", { type: "number", id: `libres-${p.id}`, min: 0, max: p.capacity ?? 999, value: p.vacancies ?? "" });
      return el("div", { class: "card", "data-place-id": p.id },
        el("label", { for: `libres-${p.id}` }, `${p.name} (${communeName(p.communeCode)}, capacité ${p.capacity ?? "?"}) : places libres`), input,
        el("div", { class: "actions" }, el("button", { type: "button", onclick: async () => {
          try {
            await run("mutation($id: ID!, $n: Int!) { updateChildcareVacancies(id: $id, vacancies: $n) { place { id } } }", { id: p.id, n: Number(input.value) });
            announce(`Places libres de ${p.name} : ${input.value}.`);
          } catch (e) { announce(`Action impossible : ${e.message}`); }
        } }, "Enregistrer")));
    }) : [el("p", {}, "Aucune structure dans votre périmètre.")]));
  }

  const PLACE_FIELDS = "id kind name communeCode address latitude longitude openingHours contact website description startsAt endsAt seats capacity ageMinMonths ageMaxMonths";
  const KINDS = { COWORKING: "coworking", DIGITAL_GALLERY: "galerie numérique", TRAINING_SESSION: "atelier", CHILDCARE: "petite enfance" };

  async function places() {
    const select = $("nouveau-lieu-commune");
    if (!select.options.length) {
      for (const c of communesCache) {
        if (!state.me.communeCode || c.code === state.me.communeCode) select.append(el("option", { value: c.code }, c.name));
      }
      $("nouveau-lieu").addEventListener("submit", async (e) => {
        e.preventDefault();
        const error = $("erreur-lieu-gestion");
        const name = $("nouveau-lieu-nom").value.trim();
        if (!name) {
          error.textContent = "Donnez un nom au lieu.";
          error.hidden = false;
          $("nouveau-lieu-nom").focus();
          announce(error.textContent);
          return;
        }
        error.hidden = true;
        await savePlace({ kind: $("nouveau-lieu-type").value, name, communeCode: select.value,
          address: $("nouveau-lieu-adresse").value.trim() || null, openingHours: $("nouveau-lieu-horaires").value.trim() || null }, "Lieu publié.");
        $("nouveau-lieu").reset();
      });
    }
    const { places: list } = await run(`query($c: String) { places(communeCode: $c) { ${PLACE_FIELDS} } }`, { c: state.me.communeCode });
    $("lieux-gestion").replaceChildren(...(list.length ? list.map((p) => {
      const field = (key, label, value) => {
        const input = el("input", { type: "text", id: `lieu-${key}-${p.id}`, value: value ?? "" });
        return [el("label", { for: `lieu-${key}-${p.id}` }, label), input];
      };
      const [nameLabel, name] = field("nom", "Nom", p.name);
      const [addressLabel, address] = field("adresse", "Adresse", p.address);
      const [hoursLabel, hours] = field("horaires", "Horaires", p.openingHours);
      const [contactLabel, contact] = field("contact", "Contact (d'un service, jamais d'une personne)", p.contact);
      return el("details", { class: "card", "data-place-id": p.id },
        el("summary", {}, `${p.name} — ${KINDS[p.kind] || p.kind}, ${communeName(p.communeCode)}`),
        nameLabel, name, addressLabel, address, hoursLabel, hours, contactLabel, contact,
        el("div", { class: "actions" },
          el("button", { type: "button", "data-action": "save-place", onclick: () => {
            const { id, ...rest } = p;
            savePlace({ ...rest, id, name: name.value.trim(), address: address.value.trim() || null,
              openingHours: hours.value.trim() || null, contact: contact.value.trim() || null }, "Lieu mis à jour.");
          } }, "Enregistrer"),
          el("button", { type: "button", class: "secondary", "data-action": "remove-place", onclick: async () => {
            try {
              await run("mutation($id: ID!) { removePlace(id: $id) { removedId } }", { id: p.id });
              announce("Lieu retiré.");
              await places();
            } catch (e) { announce(`Action impossible : ${e.message}`); }
          } }, "Retirer")));
    }) : [el("p", {}, "Aucun lieu dans votre périmètre.")]));
  }

  async function savePlace(input, message) {
    try {
      await run("mutation($input: UpdatePlaceInput!) { updatePlace(input: $input) { place { id } } }", { input });
      announce(message);
      await Promise.all([places(), childcare()]);
    } catch (e) {
      announce(`Action impossible : ${e.message}`);
    }
  }

  async function sensors() {
    const PROBLEMS = { SILENT: "muet", STUCK: "bloqué (même niveau depuis des heures)", DAMAGED: "endommagé",
      LOW_BATTERY: "pile faible", WEAK_SIGNAL: "signal radio faible",
      IMPLAUSIBLE: "mesures invraisemblables (vidé sans camion ou hors plage)" };
    const data = await run(`query($c: String) { sensorHealth(communeCode: $c, faulty: true) {
      entityId kind communeCode lastSeen batteryLevel problems } }`, { c: state.me.communeCode })
      .catch(() => ({ sensorHealth: [] }));
    const list = data.sensorHealth;
    $("capteurs").replaceChildren(...(list.length ? [el("ul", {}, list.map((h) => el("li", { "data-sensor-id": h.entityId },
      el("strong", {}, h.entityId.split(":").pop()), ` (${communeName(h.communeCode)}) : `,
      h.problems.map((p) => PROBLEMS[p] || p).join(", "),
      h.lastSeen ? ` — dernier message le ${dateTime(h.lastSeen)}` : " — jamais entendu depuis son installation",
      h.batteryLevel != null ? `, pile ${Math.round(h.batteryLevel * 100)} %` : "")))]
      : [el("p", {}, "Tous les capteurs de votre périmètre fonctionnent.")]));
  }

  async function partners() {
    if (state.me.communeCode) {
      $("partenaires").replaceChildren(el("p", {}, "Les partenaires viticoles relèvent de la communauté de communes."));
      return;
    }
    const { partners: list } = await run("{ partners { name parcels webhookUrl email } }");
    $("partenaires").replaceChildren(...(list.length ? list.map((p) => {
      const result = el("p", { role: "status" });
      return el("div", { class: "card", "data-partner": p.name },
        el("h3", {}, p.name),
        el("p", {}, `${p.parcels.length} parcelle${p.parcels.length > 1 ? "s" : ""} · webhook : ${p.webhookUrl || "aucun"} · courriel : ${p.email || "aucun"}`),
        p.webhookUrl ? el("div", { class: "actions" }, el("button", { type: "button", class: "secondary", "data-action": "test-push", onclick: async () => {
          try {
            const d = await run("mutation($p: String!) { testPartnerPush(partner: $p) { webhookStatus error } }", { p: p.name });
            const t = d.testPartnerPush;
            result.textContent = t.webhookStatus ? `Reçu par le partenaire (réponse ${t.webhookStatus}).` : `Échec : ${t.error}`;
          } catch (e) { result.textContent = `Échec : ${e.message}`; }
        } }, "Envoyer une alerte de test")) : null,
        result);
    }) : [el("p", {}, "Aucun partenaire configuré.")]));
  }

  async function collection() {
    const today = new Date().toLocaleDateString("sv-SE", { timeZone: "Europe/Paris" });
    const before = new Date(Date.now() + 86400000).toISOString();
    const c = state.me.communeCode;
    const data = await run("query($b: DateTime!, $c: String) { binsToCollect(before: $b, communeCode: $c) { entityId } }", { b: before, c })
      .catch(() => ({ binsToCollect: [] }));
    const n = data.binsToCollect.length;
    const query = c ? `?communeCode=${c}` : "";
    $("collecte").replaceChildren(`${n} conteneur${n > 1 ? "s" : ""} à collecter dans les 24 heures. `,
      el("a", { href: `/rounds/${today}${query}` }, "Tournées du jour (fiches imprimables)"));
  }

  await enter();
}

const PAGES = {
  signaler,
  "mes-signalements": mesSignalements,
  idees,
  "petite-enfance": petiteEnfance,
  lieux,
  gestion,
};

document.addEventListener("DOMContentLoaded", () => {
  const page = PAGES[document.body.dataset.page];
  if (!page) return;
  page()
    .then(() => { document.body.dataset.ready = "true"; })
    .catch((e) => {
      announce(`La page n'a pas pu se charger : ${e.message}`);
      document.body.dataset.ready = "error";
    });
});
