/* chatgate web-chat widget: <script src="https://chat.example.com/chat/widget.js" async></script>
 * Adds a launcher button that opens the chat (/chat?embed=1) in an iframe. The chat answers only
 * sites listed in [webchat] allowed_origins (CSP frame-ancestors), so elsewhere the frame stays empty.
 * Optional attributes on the script tag: data-label (button text), data-color (CSS colour). */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__chatgateWidget) return;
  window.__chatgateWidget = true;

  var chatUrl = new URL("../chat?embed=1", script.src).href;
  var label = script.getAttribute("data-label") || "Chat with us";
  var color = script.getAttribute("data-color") || "#2457d6";
  var frame = null;
  var open = false;

  function style(el, props) {
    // CSSOM properties, not a style attribute: allowed by the host page's CSP.
    Object.keys(props).forEach(function (k) { el.style[k] = props[k]; });
  }

  var button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("aria-controls", "chatgate-chat");
  style(button, {
    position: "fixed", right: "16px", bottom: "16px", zIndex: "2147483000",
    padding: "12px 18px", border: "0", borderRadius: "24px", background: color, color: "#fff",
    font: "600 15px/1.2 system-ui, sans-serif", cursor: "pointer", boxShadow: "0 4px 14px rgba(0,0,0,.2)"
  });

  function place() {
    if (!frame) return;
    var small = window.innerWidth < 480;
    style(frame, small
      ? { right: "0", bottom: "0", width: "100%", height: "100%", borderRadius: "0" }
      : { right: "16px", bottom: "76px", width: "370px", height: "560px", maxHeight: "calc(100% - 96px)",
          borderRadius: "12px" });
  }

  function makeFrame() {
    frame = document.createElement("iframe");
    frame.id = "chatgate-chat";
    frame.title = label;
    frame.src = chatUrl;
    frame.setAttribute("allow", "clipboard-write");
    style(frame, {
      position: "fixed", zIndex: "2147483001", border: "0", background: "#fff",
      boxShadow: "0 8px 30px rgba(0,0,0,.25)", display: "none"
    });
    place();
    document.body.appendChild(frame);
  }

  function toggle(show) {
    open = show === undefined ? !open : show;
    if (open && !frame) makeFrame();
    if (frame) frame.style.display = open ? "block" : "none";
    button.setAttribute("aria-expanded", open ? "true" : "false");
    button.textContent = open ? "Close chat" : label;
    // On a phone the chat covers the page: the button stays above it to close it.
    style(button, { zIndex: open ? "2147483002" : "2147483000" });
  }

  button.addEventListener("click", function () { toggle(); });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape" && open) toggle(false); });
  window.addEventListener("resize", place);

  function mount() { document.body.appendChild(button); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
