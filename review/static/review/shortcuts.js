// Keyboard shortcuts on a review item page: each control names its keys in data-shortcut.
// Buttons and links are activated, fields are focused; keys typed into a field are the trainer's text.
(function () {
  "use strict";
  function typing(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  }
  function control(key) {
    return Array.from(document.querySelectorAll("#review-item [data-shortcut]"))
      .find((el) => el.dataset.shortcut.split(" ").includes(key));
  }
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && typing(event.target)) { event.target.blur(); return; }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    const el = control(event.key.toLowerCase());
    if (!el) return;
    event.preventDefault();
    if (el.tagName === "TEXTAREA" || el.tagName === "INPUT") el.focus();
    else el.click();
  });
})();
