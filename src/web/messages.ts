/**
 * The explorer page's messages: the message area (latest first, one per kind) and inline errors next to
 * the controls. Every failure on the page ends up in one of the two.
 */
import { $ } from './dom.js';

export type Level = 'error' | 'warn' | 'info';
export interface Message {
  id: number;
  level: Level;
  kind: string;
  text: string;
}
export const messages: Message[] = [];
let messageSeq = 0;

/** Shows a message in the message area (latest first; one per `kind` replaces the previous one). */
export function showMessage(level: Level, kind: string, text: string): void {
  const i = messages.findIndex((m) => m.kind === kind);
  if (i >= 0) messages.splice(i, 1);
  messages.unshift({ id: ++messageSeq, level, kind, text });
  if (messages.length > 8) messages.pop();
  renderMessages();
  if (level === 'error') console.warn(`[dlg explorer] ${kind}: ${text}`);
}
export function clearMessage(kind: string): void {
  const i = messages.findIndex((m) => m.kind === kind);
  if (i >= 0) {
    messages.splice(i, 1);
    renderMessages();
  }
}
function renderMessages(): void {
  const box = $('messages');
  box.replaceChildren(
    ...messages.map((m) => {
      const div = document.createElement('div');
      div.className = `msg ${m.level}`;
      div.dataset.kind = m.kind;
      div.setAttribute('role', m.level === 'error' ? 'alert' : 'status');
      const close = document.createElement('button');
      close.type = 'button';
      close.textContent = '×';
      close.title = 'dismiss';
      close.onclick = () => clearMessage(m.kind);
      div.append(close, document.createTextNode(m.text));
      return div;
    }),
  );
}

/** Inline error next to a control (slot ids err-B, err-D, err-K, err-seed, err-res, err-coords, ...). */
export const inlineErrors = new Map<string, string>();
export function setInline(slot: string, text: string | null): void {
  const el = document.getElementById(`err-${slot}`);
  if (!el) {
    if (text) showMessage('error', `input-${slot}`, text);
    return;
  }
  el.textContent = text ?? '';
  if (text) inlineErrors.set(slot, text);
  else inlineErrors.delete(slot);
  const input = document.getElementById(slot);
  if (input) input.classList.toggle('bad', !!text);
}

/** Where a DlgInputError from the library belongs on the page. */
export function slotFor(field: string): string {
  if (/^(coords|points|swap|plane|center|u$|v$)/.test(field)) return 'coords';
  const head = field.split(/[.[]/)[0];
  if (['B', 'D', 'K', 'seed', 'span', 'res', 'P', 'iters', 'lr'].includes(head)) return head;
  if (head === 'alpha' || head === 'beta') return 'span';
  if (field.startsWith('defence')) return 'defStrength';
  return 'general';
}

export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

