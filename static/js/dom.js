/* dom.js — first in the bundle: the ES namespace (pages register on ES.pages; boot.js runs the one named by
   <body data-page>), storage that survives a web view refusing it, and DOM building that only ever sets text
   (never HTML from data). */
(function () {
  "use strict";

  const ES = (window.ES = { pages: {} });

  function storage(kind) {
    // Web views may refuse storage (private mode, strict settings): the app must still work without it.
    return {
      get(key) { try { return window[kind].getItem(key); } catch (e) { return null; } },
      set(key, value) { try { window[kind].setItem(key, value); } catch (e) { /* not fatal */ } },
    };
  }
  ES.local = storage("localStorage");
  ES.session = storage("sessionStorage");
  ES.$ = (selector, root) => (root || document).querySelector(selector);
  ES.$$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));
  ES.query = (name) => new URLSearchParams(location.search).get(name);

  /** Build an element. Children and `text` become text nodes: data never reaches innerHTML. */
  ES.el = function (tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of [].concat(children === undefined ? [] : children)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  };
})();
