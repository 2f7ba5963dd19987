// The detail view of one job: its images at full size with downloads, the prompt, parameters,
// timings, attempts and its whole history. The history and the live updates come from one
// event stream opened with Last-Event-ID 0 (every history entry first, then live); for a
// finished job it ends after the last entry.

import { followEvents } from "/ui/core/events.js";
import { downloadLink, mediaImage } from "./media.js";
import { mediaKey, seconds, stateText, when } from "./jobview.js";

const dialog = document.getElementById("detail");
const title = document.getElementById("detail-title");
const body = document.getElementById("detail-body");
let stream = null;

document.getElementById("detail-close").addEventListener("click", () => dialog.close());
dialog.addEventListener("close", () => {
  stream?.abort();
  stream = null;
  body.replaceChildren();
});

export function showDetail(session, job, onJob) {
  stream?.abort();
  stream = new AbortController();
  title.textContent = job.prompt;
  const history = element("ol", { className: "history" });
  const parts = { job: null, history, figures: null };
  body.replaceChildren(
    element("p", { className: "notice" }, "Loading…"),
  );
  dialog.showModal();
  followEvents(session, `/jobs/${job.id}/events`, {
    signal: stream.signal,
    lastEventId: "0",
    onEvent: (event) => {
      const data = JSON.parse(event.data);
      if (event.event === "change") history.append(historyEntry(data));
      else if (event.event === "status") {
        render(session, parts, data);
        onJob(data); // the card behind the dialog follows too
      } else if (event.event === "logs" && parts.job) {
        render(session, parts, { ...parts.job, ...data });
      }
    },
  }).catch(() => {
    body.replaceChildren(element("p", { className: "error-text" }, "This job cannot be shown."));
  });
}

function render(session, parts, job) {
  const mediaChanged = !parts.job || mediaKey(parts.job.media) !== mediaKey(job.media);
  parts.job = job;
  if (mediaChanged) {
    parts.figures = element("div", { className: "figures" });
    for (const media of job.media) {
      const figure = element("figure");
      figure.append(
        mediaImage(session, media, `Image ${media.index + 1} of ${job.media.length}: ${job.prompt}`),
        downloadLink(session, job.id, media),
      );
      parts.figures.append(figure);
    }
  }
  const sections = [
    element("p", { className: "state" }, badge(job.status), " ", stateText(job)),
    parts.figures,
  ];
  if (job.status === "running" && job.logs) {
    sections.push(element("h3", {}, "Logs"), element("pre", { className: "logs" }, job.logs));
  }
  if (job.last_error) {
    sections.push(element("p", { className: "error-text" }, `Last error: ${job.last_error}`));
  }
  sections.push(element("h3", {}, "Details"), facts(job), element("h3", {}, "History"), parts.history);
  body.replaceChildren(...sections);
}

function facts(job) {
  const rows = [
    ["Prompt", job.prompt],
    ["Model", job.model],
    ...Object.entries(job.params).map(([name, value]) => [name.replaceAll("_", " "), String(value)]),
    ["Priority", job.priority],
    ["Attempts", String(job.attempts)],
    ["Retries", String(job.retries)],
    ["Created", when(job.created_at)],
    ["Started", when(job.started_at)],
    ["Finished", when(job.finished_at)],
  ];
  if (job.started_at) rows.push(["Waited in queue", seconds(job.created_at, job.started_at)]);
  if (job.started_at && job.finished_at) rows.push(["Ran for", seconds(job.started_at, job.finished_at)]);
  if (job.deadline_at) rows.push(["Deadline", when(job.deadline_at)]);
  const list = element("dl", { className: "facts" });
  for (const [name, value] of rows) {
    if (value) list.append(element("dt", {}, name), element("dd", {}, value));
  }
  return list;
}

function historyEntry(event) {
  const time = element("time", { dateTime: event.created_at }, new Date(event.created_at).toLocaleTimeString());
  let text = event.kind;
  if (event.from_status || event.to_status) text += `: ${event.from_status ?? "new"} → ${event.to_status}`;
  if (event.attempt) text += ` (attempt ${event.attempt})`;
  if (event.detail) text += ` · ${event.detail}`;
  return element("li", {}, time, " ", text);
}

function badge(status) {
  return element("span", { className: `badge ${status}` }, status);
}

function element(tag, properties = {}, ...children) {
  const node = Object.assign(document.createElement(tag), properties);
  node.append(...children);
  return node;
}
