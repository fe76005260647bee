/** The explorer page's element lookups. */
export const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
export const num = (id: string) => $<HTMLInputElement>(id);
