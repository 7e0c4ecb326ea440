// A refused form: bring its first error into view and put the focus on the field it names,
// so on a phone the errors are not below the fold with the focus left on the page.
document.addEventListener("DOMContentLoaded", () => {
  const target = document.querySelector(
    ".has-error input, .has-error select, .has-error textarea, form .alert.error"
  );
  if (!target) return;
  target.scrollIntoView({ block: "center" });
  if (target.matches("input, select, textarea")) {
    target.focus({ preventScroll: true });
  } else {
    target.setAttribute("tabindex", "-1");
    target.focus({ preventScroll: true });
  }
});
