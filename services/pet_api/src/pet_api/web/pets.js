// The pet directory: the list of pets (filter, search, pages) for everyone, and adding,
// editing and deleting them once signed in. Every text from the API goes in with
// textContent, never as HTML.

import { EXPIRED_MESSAGE, Session, SessionExpired, bindSignInForm } from "/ui/core/session.js";
import { clearErrors, submitting } from "/ui/core/forms.js";

// The values of core.schemas.pets.PetType (the browser tests check the two agree).
const PET_TYPES = ["cat", "dog", "bird", "fish", "rabbit", "hamster", "reptile", "other"];
const PAGE_SIZE = 10;
const SEARCH_DELAY_MS = 300; // a search per pause in typing, not per key

const session = new Session("pet-directory.session");
const added = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const byId = (id) => document.getElementById(id);

// The cursor of each page seen so far, the current page's last: the API's cursors only go
// forward, so "Previous page" goes back to the cursor before.
let cursors = [null];
let nextCursor = null;
let latestLoad = 0; // only the newest list request may draw: an older one can answer later
let searchTimer = null;
let selected = null; // the pet the open dialog is about

function start() {
  for (const select of [byId("filter-type"), byId("add-type"), byId("edit-type")]) {
    for (const type of PET_TYPES) select.append(new Option(typeLabel(type), type));
  }
  bindSignInForm(byId("sign-in-form"), session);
  session.addEventListener("change", sessionChanged);
  byId("show-sign-in").addEventListener("click", () => showSignIn(byId("sign-in").hidden));
  byId("sign-out").addEventListener("click", () => session.signOut("You have signed out."));

  byId("filters").addEventListener("submit", (event) => {
    event.preventDefault(); // Enter in the search box: search now
    firstPage();
  });
  byId("filter-type").addEventListener("change", firstPage);
  byId("filter-name").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(firstPage, SEARCH_DELAY_MS);
  });
  byId("next-page").addEventListener("click", () => turnPage(+1));
  byId("previous-page").addEventListener("click", () => turnPage(-1));

  byId("add-form").addEventListener("submit", addPet);
  byId("edit-form").addEventListener("submit", savePet);
  byId("delete-form").addEventListener("submit", deletePet);
  for (const button of document.querySelectorAll(".close-dialog")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }

  showSession();
  loadPets();
}

function typeLabel(type) {
  return type.charAt(0).toUpperCase() + type.slice(1);
}

function announce(message) {
  byId("status").textContent = message;
}

// --- Signing in and out -------------------------------------------------------------------

// Show what the visitor may do: the forms and buttons that write only when signed in.
function showSession() {
  const signedIn = session.signedIn;
  byId("who").hidden = !signedIn;
  byId("who").textContent = signedIn ? `Signed in as ${session.username}` : "";
  byId("sign-out").hidden = !signedIn;
  byId("show-sign-in").hidden = signedIn;
  byId("add").hidden = !signedIn;
  document.querySelector("th.row-actions").hidden = !signedIn;
  if (signedIn) showSignIn(false);
}

function showSignIn(open) {
  byId("sign-in").hidden = !open;
  byId("show-sign-in").setAttribute("aria-expanded", String(open));
  if (open) byId("username").focus();
}

function sessionChanged(event) {
  // A dialog left open would act for a session that is gone.
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  showSession();
  if (session.signedIn) {
    announce(`Signed in as ${session.username}.`);
    byId("add-title").focus(); // the sign-in form that had the focus is gone
  } else {
    announce(event.detail.message || "");
    if (event.detail.message === EXPIRED_MESSAGE) showSignIn(true);
    else byId("show-sign-in").focus();
  }
  loadPets(); // the rows gain or lose their Edit and Delete buttons
}

// --- The list ------------------------------------------------------------------------------

function firstPage() {
  clearTimeout(searchTimer);
  cursors = [null];
  loadPets();
}

async function turnPage(step) {
  const [pressed, other] = step > 0 ? ["next-page", "previous-page"] : ["previous-page", "next-page"];
  if (step > 0 ? nextCursor === null : cursors.length === 1) return; // a second click in flight
  if (step > 0) cursors.push(nextCursor);
  else cursors.pop();
  nextCursor = null; // known again when the page arrives
  await loadPets();
  // On the first or last page the button pressed is disabled, and a keyboard user would
  // lose their place: keep the focus on the pager.
  const lost = document.activeElement === document.body || document.activeElement === byId(pressed);
  if (byId(pressed).disabled && lost) byId(other).focus();
}

async function loadPets() {
  const load = ++latestLoad;
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  const type = byId("filter-type").value;
  const name = byId("filter-name").value;
  if (type) query.set("pet_type", type);
  if (name) query.set("name", name); // the API matches any part of the name, any case
  if (cursors.at(-1)) query.set("cursor", cursors.at(-1));
  let page;
  try {
    page = await session.call("GET", `/pets?${query}`);
  } catch (error) {
    // An expired session signs out, and sessionChanged loads the list again without it.
    if (!(error instanceof SessionExpired) && load === latestLoad) {
      announce(`The pets could not be loaded: ${error.message}`);
    }
    return;
  }
  if (load !== latestLoad) return;
  if (page.items.length === 0 && cursors.length > 1) {
    cursors.pop(); // the last pets of this page were deleted: show the one before
    await loadPets();
    return;
  }
  nextCursor = page.next_cursor;
  showPets(page.items);
}

function showPets(pets) {
  byId("pets").replaceChildren(...pets.map(petRow));
  const filtered = byId("filter-type").value || byId("filter-name").value;
  byId("empty").hidden = pets.length > 0;
  byId("empty").textContent = filtered ? "No pets match the filter." : "No pets yet.";
  byId("previous-page").disabled = cursors.length === 1;
  byId("next-page").disabled = nextCursor === null;
  byId("page-number").textContent = `Page ${cursors.length}`;
}

function petRow(pet) {
  const row = document.createElement("tr");
  const name = document.createElement("th"); // the row header: screen readers name each cell by it
  name.scope = "row";
  name.textContent = pet.name;
  const when = document.createElement("time");
  when.dateTime = pet.created_at;
  when.textContent = added.format(new Date(pet.created_at));
  const date = cell("", "optional");
  date.append(when);
  row.append(name, cell(typeLabel(pet.pet_type)), date);
  if (session.signedIn) {
    const buttons = document.createElement("div");
    buttons.className = "actions";
    buttons.append(
      rowButton("Edit", pet, "", () => openEdit(pet)),
      rowButton("Delete", pet, "danger", () => openDelete(pet)),
    );
    const actions = cell("", "row-actions");
    actions.append(buttons);
    row.append(actions);
  }
  return row;
}

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

// "Edit" to the eye, "Edit Rex" to a screen reader: a list of bare "Edit" buttons says
// nothing about which pet each one is for.
function rowButton(label, pet, className, onClick) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  const hidden = document.createElement("span");
  hidden.className = "visually-hidden";
  hidden.textContent = ` ${pet.name}`;
  button.append(label, hidden);
  button.addEventListener("click", onClick);
  return button;
}

// --- Adding, editing, deleting ---------------------------------------------------------------

async function addPet(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const pet = await submitting(form, () => session.call("POST", "/pets", petFrom(form)));
  if (!pet) return; // the errors are shown by the fields
  form.reset();
  byId("add-name").focus();
  announce(`Added ${pet.name}.`);
  await loadPets();
}

function openEdit(pet) {
  selected = pet;
  const form = byId("edit-form");
  form.reset();
  clearErrors(form);
  byId("edit-title").textContent = `Edit ${pet.name}`;
  byId("edit-name").value = pet.name;
  byId("edit-type").value = pet.pet_type;
  byId("edit-dialog").showModal();
}

async function savePet(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const pet = await submitting(form, () =>
    session.call("PUT", `/pets/${selected.id}`, petFrom(form)),
  );
  if (!pet) return;
  byId("edit-dialog").close();
  announce(`Saved ${pet.name}.`);
  await loadPets();
  byId("list-title").focus(); // the row's button that opened the dialog was drawn anew
}

function openDelete(pet) {
  selected = pet;
  clearErrors(byId("delete-form"));
  byId("delete-title").textContent = `Delete ${pet.name}?`;
  byId("delete-question").textContent = `${pet.name} will be removed from the directory for good.`;
  byId("delete-dialog").showModal();
}

async function deletePet(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const pet = selected;
  const done = await submitting(form, async () => {
    await session.call("DELETE", `/pets/${pet.id}`);
    return true;
  });
  if (!done) return;
  byId("delete-dialog").close();
  announce(`Deleted ${pet.name}.`);
  await loadPets();
  byId("list-title").focus();
}

function petFrom(form) {
  const data = new FormData(form);
  return { name: String(data.get("name")), pet_type: String(data.get("pet_type")) };
}

start();
