// The media gallery: sign in, submit prompts, watch each job go live, browse the results.

import {
  ApiError, Session, SessionExpired, UNREACHABLE_MESSAGE, bindSignInForm,
} from "/ui/core/session.js";
import { submitting } from "/ui/core/forms.js";
import { newCard, updateCard } from "./cards.js";
import { showDetail } from "./detail.js";
import { UNFINISHED } from "./jobview.js";
import { LiveJobs } from "./live.js";
import { forgetMedia } from "./media.js";

const PAGE_SIZE = 12;

const session = new Session("media-gateway.session");
const live = new LiveJobs(session, showJob);
const cards = new Map(); // job id -> card element
const $ = (id) => document.getElementById(id);
const gallery = $("gallery");
const announce = (text) => { $("gallery-status").textContent = text; };

// The gallery's paging: a new object for each first page, so that an answer to a request made
// for an earlier one (another filter, or before signing out) is recognised and dropped.
let next = { cursor: null, more: false, loading: false };

// --- signing in and out -------------------------------------------------------------------

bindSignInForm($("signin-form"), session);
$("sign-out").addEventListener("click", () => session.signOut("You signed out."));
session.addEventListener("change", (event) => {
  if (!event.detail.signedIn) $("signin-message").textContent = event.detail.message || "";
  showView();
});

function showView() {
  const signedIn = session.signedIn;
  $("signin-view").hidden = signedIn;
  $("app-view").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  $("who").hidden = !signedIn;
  $("who").textContent = signedIn ? `Signed in as ${session.username}` : "";
  if (signedIn) {
    $("signin-message").textContent = "";
    $("prompt").focus();
    loadFirstPage();
  } else {
    resetGallery({ more: false });
    forgetMedia();
    $("signin-username").focus();
  }
}

// --- submitting a prompt ------------------------------------------------------------------

$("generate-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  submitting(form, async () => {
    const request = generateRequest(new FormData(form));
    const accepted = await session.call("POST", "/generate", request);
    if ($("status-filter").value !== "") {
      $("status-filter").value = ""; // a new job is queued: show every job again, it first
      await loadFirstPage();
    }
    const job = { id: accepted.job_id, status: accepted.status, prompt: request.prompt.trim(), media: [] };
    addCard(job, { prepend: true });
    live.follow(job.id, { first: true });
    announce("Job queued.");
    form.elements.prompt.value = "";
  });
});

// Ctrl+Enter (or Cmd+Enter) in the prompt submits: Enter alone is a line break there.
$("prompt").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    $("generate-form").requestSubmit();
  }
});

function generateRequest(data) {
  const params = {
    aspect_ratio: data.get("aspect_ratio"),
    num_outputs: Number(data.get("num_outputs")),
    output_format: data.get("output_format"),
  };
  const seed = String(data.get("seed")).trim();
  // Sent as typed: a number when it reads as one, else the text, for the API to explain.
  if (seed !== "") params.seed = Number.isFinite(Number(seed)) ? Number(seed) : seed;
  return { prompt: String(data.get("prompt")), params, priority: data.get("priority") };
}

// --- the gallery --------------------------------------------------------------------------

// Show `job` on its card. Updates (from streams, buttons, the detail view) change a card on
// the screen only; a card is made for a job of the list (appended) or a new one (first).
function showJob(job) {
  const card = cards.get(job.id);
  if (card) updateCard(card, session, job);
}

function addCard(job, { prepend = false } = {}) {
  const card = cards.get(job.id) || newCard(job);
  cards.set(job.id, card);
  if (prepend) gallery.prepend(card);
  else if (!card.isConnected) gallery.append(card);
  updateCard(card, session, job);
}

function resetGallery({ more }) {
  next = { cursor: null, more, loading: false };
  live.stopAll();
  cards.clear();
  gallery.replaceChildren();
}

async function loadFirstPage() {
  resetGallery({ more: true });
  await loadMore();
}

async function loadMore() {
  if (next.loading || !next.more) return;
  const state = next;
  state.loading = true;
  $("load-more").disabled = true;
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state.cursor) query.set("cursor", state.cursor);
  if ($("status-filter").value) query.set("status", $("status-filter").value);
  try {
    const page = await session.call("GET", `/jobs?${query}`);
    if (state !== next) return; // for a first page since replaced
    for (const job of page.items) {
      addCard(job);
      if (UNFINISHED.has(job.status)) live.follow(job.id);
    }
    state.cursor = page.next_cursor;
    state.more = page.next_cursor !== null;
    if (cards.size === 0) announce("No jobs yet: describe an image above.");
    else announce(state.more ? "" : `All ${cards.size} jobs shown.`);
  } catch (error) {
    if (!(error instanceof SessionExpired)) announce(`Jobs could not be loaded: ${error.message}`);
  } finally {
    state.loading = false;
    $("load-more").disabled = false;
    $("load-more").hidden = !state.more;
  }
  if (state === next && state.more && endInView) loadMore(); // the page is still short
}

$("status-filter").addEventListener("change", loadFirstPage);
$("load-more").addEventListener("click", loadMore);

// Infinite scroll: the next page loads as the end of the list comes into view.
let endInView = false;
new IntersectionObserver((entries) => {
  endInView = entries.some((entry) => entry.isIntersecting);
  if (endInView && session.signedIn) loadMore();
}, { rootMargin: "400px" }).observe($("gallery-end"));

// --- a card's buttons -----------------------------------------------------------------------

gallery.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const card = button.closest(".card");
  const job = card.job;
  if (button.dataset.action === "details") {
    showDetail(session, job, showJob);
    return;
  }
  button.disabled = true;
  try {
    const path = `/jobs/${job.id}/${button.dataset.action}`;
    const updated = await session.call("POST", path);
    showJob(updated);
    if (button.dataset.action === "retry") live.follow(job.id, { first: true });
    announce(button.dataset.action === "retry" ? "Job queued again." : "Job canceled.");
  } catch (error) {
    if (error instanceof ApiError) announce(error.message);
    else if (!(error instanceof SessionExpired)) announce(UNREACHABLE_MESSAGE);
  } finally {
    button.disabled = false;
  }
});

showView();
