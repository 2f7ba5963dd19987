// Showing the API's 422 details by the fields they are about. Each input names the location
// of its value in the request with data-loc ("body.params.seed", "body.name"); a field's
// message goes in the element its aria-describedby names first, with class field-error.
// Errors no field claims go to the form's .form-error.

import { ApiError, SessionExpired, UNREACHABLE_MESSAGE } from "./session.js";

export function clearErrors(form) {
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  for (const message of form.querySelectorAll(".field-error, .form-error")) message.textContent = "";
}

function messageElement(input) {
  const ids = (input.getAttribute("aria-describedby") || "").split(/\s+/);
  for (const id of ids) {
    const element = id && document.getElementById(id);
    if (element && element.classList.contains("field-error")) return element;
  }
  return null;
}

// Show `error` on `form`: field by field for a 422, else as one sentence.
export function showError(form, error) {
  clearErrors(form);
  const general = form.querySelector(".form-error");
  if (error instanceof SessionExpired) return;
  if (!(error instanceof ApiError)) {
    general.textContent = UNREACHABLE_MESSAGE;
    return;
  }
  const unclaimed = [];
  let first = null;
  for (const item of error.fieldErrors) {
    const loc = item.loc.join(".");
    const input = form.querySelector(`[data-loc="${CSS.escape(loc)}"]`);
    const message = input && messageElement(input);
    if (!message) {
      unclaimed.push(`${item.loc.slice(1).join(".") || "request"}: ${item.msg}`);
      continue;
    }
    input.setAttribute("aria-invalid", "true");
    message.textContent = message.textContent ? `${message.textContent} ${item.msg}` : item.msg;
    first = first || input;
  }
  if (error.fieldErrors.length === 0) unclaimed.push(error.message);
  general.textContent = unclaimed.join(" ");
  (first || general).focus?.();
}

// Run `action` with the form's submit button disabled, and its errors shown.
export async function submitting(form, action) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  form.setAttribute("aria-busy", "true");
  try {
    clearErrors(form);
    return await action();
  } catch (error) {
    showError(form, error);
    return undefined;
  } finally {
    button.disabled = false;
    form.removeAttribute("aria-busy");
  }
}
