// onmodel serve: small progressive enhancements. Every form also works without this file
// (it posts and the server redirects back); this script only avoids reloads and keeps the
// session page live. No framework and no build step, on purpose.
"use strict";

(() => {
  const session = document.body.dataset.session || null;
  let version = document.body.dataset.version || "";
  let timer = null;

  const newKey = () =>
    Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");

  const fromHtml = (html) => {
    const holder = document.createElement("template");
    holder.innerHTML = html.trim();
    return holder.content.firstElementChild;
  };

  const flash = (element) => {
    element.classList.add("flash");
    setTimeout(() => element.classList.remove("flash"), 1600);
  };

  const post = (form, submitter) => send(form, new URLSearchParams(new FormData(form, submitter)));

  async function send(form, body) {
    // getAttribute, not form.action: the shot form has a field named "action" that shadows it.
    const response = await fetch(form.getAttribute("action"), {
      method: "POST",
      body,
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    let data = {};
    try {
      data = await response.json();
    } catch (err) {
      data = { error: `${response.status} ${response.statusText}` };
    }
    if (!response.ok) throw new Error(data.error || `${response.status}`);
    return data;
  }

  // Replace a card with fresh HTML from the server, keeping the page's layout choices.
  function swapCard(card, html) {
    const fresh = fromHtml(html);
    if (!card.querySelector(".frame")) fresh.querySelector(".frame")?.remove();
    card.replaceWith(fresh);
    return fresh;
  }

  // ---- star, rating, note -------------------------------------------------------------
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (form.classList.contains("js-annotate")) {
      event.preventDefault();
      const card = form.closest(".card");
      const action = event.submitter?.dataset.action;
      try {
        const data = await post(form, event.submitter);
        if (card) {
          const fresh = swapCard(card, data.html);
          if (action === "note") {
            const saved = fresh.querySelector(".saved");
            if (saved) {
              saved.textContent = "saved ✓";
              saved.classList.add("show");
              setTimeout(() => saved.classList.remove("show"), 1800);
            }
          }
        }
      } catch (err) {
        alert(`Could not save: ${err.message}`);
      }
      return;
    }
    if (form.id === "shot-form") {
      event.preventDefault();
      await startShot(form, event.submitter);
      return;
    }
    if (form.classList.contains("js-retry")) {
      event.preventDefault();
      await startRetry(form, event.submitter);
      return;
    }
    if (form.classList.contains("js-hide") || form.classList.contains("js-reload")) {
      event.preventDefault();
      await change(form, event.submitter);
      return;
    }
    if (form.classList.contains("js-upload")) {
      event.preventDefault();
      await upload(form);
    }
  });

  // The picture goes as the form would send it (multipart); one too large is refused here, as
  // the server would refuse it without reading it (and a browser may show that as a reset).
  async function upload(form) {
    const error = form.querySelector(".form-error");
    const button = form.querySelector("button[type=submit]");
    const file = form.querySelector("input[type=file]").files[0];
    const most = Number(form.dataset.maxBytes);
    error.textContent = "";
    if (file && file.size > most) {
      error.textContent = `${file.name} is larger than ${Math.floor(most / 1048576)} MB`;
      return;
    }
    button.disabled = true;
    try {
      await send(form, new FormData(form));
      window.location.reload();
    } catch (err) {
      error.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  }

  // Hide (or unhide) takes a card or a grid tile off the page; a new head or anchor changes
  // the lineage, the badges and the forms: the page is drawn again.
  async function change(form, submitter) {
    const error = form.querySelector(".form-error");
    if (error) error.textContent = "";
    try {
      await post(form, submitter);
    } catch (err) {
      if (error) error.textContent = err.message;
      else alert(`Could not do it: ${err.message}`);
      return;
    }
    const item = form.closest(".tile, #cards .card");
    if (form.classList.contains("js-hide") && item) {
      item.remove();
      schedule(100);
    } else {
      window.location.reload();
    }
  }

  // ---- new shots and retries ---------------------------------------------------------------
  // A new image's card: added where the session's newest cards are shown, or else opened on
  // its session's page. True when it was added here.
  function showNew(data) {
    const cards = document.getElementById("cards");
    let card = document.getElementById(`image-${data.id}`);
    if (!(session && data.session === session && (card || cards?.dataset.live === "1"))) {
      window.location.assign(`/sessions/${encodeURIComponent(data.session)}#image-${data.id}`);
      return false;
    }
    if (!card) {
      card = fromHtml(data.html);
      cards.append(card);
    }
    card.scrollIntoView({ behavior: "smooth", block: "center" });
    flash(card);
    schedule(300);
    return true;
  }

  async function startShot(form, submitter) {
    const error = form.querySelector("#shot-error");
    const button = form.querySelector("button[type=submit]");
    if (error) error.textContent = "";
    if (button) button.disabled = true;
    try {
      const data = await post(form, submitter);
      form.querySelector("input[name=key]").value = newKey();
      if (showNew(data)) {
        for (const input of form.querySelectorAll("input[type=text], textarea")) input.value = "";
      }
      if (data.warnings?.length && error) error.textContent = data.warnings.join(" ");
    } catch (err) {
      if (error) error.textContent = err.message;
    } finally {
      if (button) button.disabled = false;
    }
  }

  // The form keeps its key: a second click is the same retry, not another one.
  async function startRetry(form, submitter) {
    const error = form.querySelector(".form-error");
    const button = form.querySelector("button[type=submit]");
    error.textContent = "";
    button.disabled = true;
    try {
      showNew(await post(form, submitter));
    } catch (err) {
      error.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest?.(".js-branch");
    if (!button) return;
    const id = button.dataset.branchFrom;
    const form = document.getElementById("shot-form");
    const select = document.getElementById("from-image");
    const fixed = form?.querySelector("input[type=hidden][name=from]");
    if (!form || (!select && fixed?.value !== id)) {
      window.location.assign(`/images/${id}#shot-form`);
      return;
    }
    if (select) {
      if (![...select.options].some((o) => o.value === id)) select.add(new Option(`#${id}`, id));
      select.value = id;
    }
    const panel = form.closest(".panel") || form;
    panel.scrollIntoView({ behavior: "smooth", block: "start" });
    flash(panel);
    panel.querySelector("input[type=text]")?.focus({ preventScroll: true });
  });

  // ---- live session page ----------------------------------------------------------------
  function schedule(delay) {
    if (!session) return;
    clearTimeout(timer);
    timer = setTimeout(poll, delay);
  }

  function nextDelay() {
    const busy = document.querySelector('.card[data-status="pending"] .spinner');
    return busy ? 1000 : 4000;
  }

  function updateBranchable(items) {
    const select = document.getElementById("from-image");
    if (!select) return;
    const chosen = select.value;
    const known = new Set([...select.options].map((o) => o.value));
    for (const item of items) {
      if (!known.has(String(item.id))) select.add(new Option(item.label, String(item.id)));
    }
    select.value = chosen;
  }

  // The poll sends the page's own choices (which lineage window, which cards) and its head;
  // the answer holds only the cards that changed since its version, the lineage panel and
  // the totals, or "reload" when more changed than is worth sending.
  function pollUrl() {
    const query = new URLSearchParams(window.location.search);
    query.set("v", version);
    query.set("head", document.body.dataset.head || "");
    return `/api/sessions/${encodeURIComponent(session)}?${query}`;
  }

  async function poll() {
    if (document.hidden) return schedule(4000);
    try {
      const response = await fetch(pollUrl(), { headers: { Accept: "application/json" } });
      if (response.ok) {
        const state = await response.json();
        if (state.reload) return window.location.reload();
        if (!state.unchanged) apply(state);
      }
    } catch (err) {
      // the server may be restarting; try again later
    }
    schedule(nextDelay());
  }

  // A changed card on the page is swapped, a hidden one removed; a new one is added only
  // where the newest cards are shown (an older page keeps its own).
  function apply(state) {
    version = state.version;
    document.body.dataset.version = version;
    document.body.dataset.head = state.head ?? "";
    for (const id of state.gone) document.getElementById(`image-${id}`)?.remove();
    const cards = document.getElementById("cards");
    const shown = [...cards.querySelectorAll(".card[data-image-id]")].map((c) => +c.dataset.imageId);
    const newest = Math.max(0, ...shown);
    for (const item of state.images) {
      const card = document.getElementById(`image-${item.id}`);
      if (!card) {
        if (cards.dataset.live === "1" && item.id > newest) cards.append(fromHtml(item.html));
      } else if (card.dataset.rev !== item.rev && !card.contains(document.activeElement)) {
        const fresh = swapCard(card, item.html);
        if (card.dataset.status !== item.status) flash(fresh);
      }
    }
    const lineage = document.getElementById("lineage");
    if (lineage && lineage.innerHTML.trim() !== state.lineage.trim()) lineage.innerHTML = state.lineage;
    const chips = document.querySelector("[data-summary]");
    if (chips) chips.replaceWith(fromHtml(state.summary));
    updateBranchable(state.branchable);
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) schedule(100);
  });
  schedule(nextDelay());
})();
