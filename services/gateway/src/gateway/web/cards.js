// A job's card in the gallery: built once from the template, then updated in place as the job
// changes (so focus and images stay put while it goes live).

import { mediaImage } from "./media.js";
import { canCancel, canRetry, mediaKey, stateText } from "./jobview.js";

const template = document.getElementById("card-template");

export function newCard(job) {
  const card = template.content.firstElementChild.cloneNode(true);
  card.dataset.jobId = job.id;
  card.querySelector(".prompt").textContent = job.prompt;
  // Each button names its job for a screen reader ("Cancel: a red fox ...").
  for (const button of card.querySelectorAll("button[data-action]")) {
    const label = `${button.textContent}: ${job.prompt.slice(0, 60)}`;
    button.setAttribute("aria-label", label);
  }
  card.job = job;
  return card;
}

// Show `job` (a JobSummary or JobPublic; later fields win) on `card`.
export function updateCard(card, session, job) {
  const merged = { ...card.job, ...job };
  const shownMedia = card.dataset.media;
  card.job = merged;
  card.dataset.status = merged.status;
  const badge = card.querySelector(".badge");
  badge.className = `badge ${merged.status}`;
  badge.textContent = merged.status;
  card.querySelector(".state-text").textContent = stateText(merged);

  const progress = card.querySelector("progress");
  progress.hidden = !(merged.status === "running" && merged.progress != null);
  if (!progress.hidden) progress.value = merged.progress;

  const error = card.querySelector(".error-text");
  error.hidden = !(merged.status === "failed" && merged.last_error);
  error.textContent = error.hidden ? "" : merged.last_error;

  card.querySelector('[data-action="cancel"]').hidden = !canCancel(merged);
  card.querySelector('[data-action="retry"]').hidden = !canRetry(merged);

  const media = merged.media || [];
  const key = mediaKey(media);
  if (key !== shownMedia) {
    card.dataset.media = key;
    const thumbs = card.querySelector(".thumbs");
    thumbs.replaceChildren(
      ...media.map((m) => mediaImage(session, m, `Image ${m.index + 1} of ${media.length}: ${merged.prompt}`)),
    );
  }
}
