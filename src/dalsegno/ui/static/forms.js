/* Forms: a select marked data-autosubmit submits its form when it changes (the filters of
   the lists), bound from here since the pages carry no inline handler. */
(function () {
  "use strict";
  document.addEventListener("change", (event) => {
    const field = event.target.closest("select[data-autosubmit]");
    if (field && field.form) {
      field.form.requestSubmit();
    }
  });
}());
