// Media are private to their caller (GET /media needs the bearer token), so an <img> cannot
// load them by URL: each file is fetched once with the token and shown from a blob: URL.

import { SessionExpired } from "/ui/core/session.js";

const loaded = new Map(); // media URL -> Promise of a blob: URL

export function blobUrl(session, url) {
  if (!loaded.has(url)) {
    const load = session.fetch(url).then(async (response) => {
      if (!response.ok) throw new Error(`${response.status}`);
      return URL.createObjectURL(await response.blob());
    });
    load.catch(() => loaded.delete(url)); // a later view tries again
    loaded.set(url, load);
  }
  return loaded.get(url);
}

// An <img> showing `media` (a MediaPublic), or a sentence saying why it cannot.
export function mediaImage(session, media, alt) {
  if (media.expired) return note("This file expired and was deleted.");
  const img = document.createElement("img");
  img.alt = alt;
  img.decoding = "async";
  blobUrl(session, media.url).then(
    (src) => { img.src = src; },
    (error) => {
      if (!(error instanceof SessionExpired)) img.replaceWith(note("The file could not be loaded."));
    },
  );
  return img;
}

// A download link for `media`, named after the job and the file's index.
export function downloadLink(session, jobId, media) {
  const link = document.createElement("a");
  link.className = "button";
  const ext = (media.content_type.split("/")[1] || "bin").replace("jpeg", "jpg");
  link.download = `${jobId}-${media.index}.${ext}`;
  link.textContent = `Download image ${media.index + 1}`;
  link.setAttribute("aria-disabled", "true");
  blobUrl(session, media.url).then(
    (href) => { link.href = href; link.removeAttribute("aria-disabled"); },
    () => { link.textContent += " (unavailable)"; },
  );
  return link;
}

// Forget every loaded file (sign out).
export function forgetMedia() {
  for (const load of loaded.values()) load.then(URL.revokeObjectURL, () => {});
  loaded.clear();
}

function note(text) {
  const p = document.createElement("p");
  p.className = "notice";
  p.textContent = text;
  return p;
}
