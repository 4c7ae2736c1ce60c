// A typed set of listeners for one kind of event: `add` returns the
// unsubscribe function, `size` lets the publisher skip work nobody would see.
// Replaces string-keyed EventEmitter events, whose payloads and names are
// unchecked and whose listenerCount() is an untyped side channel.

export type Listener<T> = (event: T) => void;

export class Subscribers<T> {
  #listeners = new Set<Listener<T>>();

  /** Subscribes `listener`; the result unsubscribes it (idempotent). */
  add(listener: Listener<T>): () => void {
    // Wrapped so the same function subscribed twice gets two subscriptions, like on().
    const entry: Listener<T> = (e) => listener(e);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  get size(): number {
    return this.#listeners.size;
  }

  /**
   * Calls every listener with `event`, in subscription order. A listener that
   * throws does not stop the others nor the publisher: `onError` gets it.
   */
  emit(event: T, onError: (err: unknown) => void): void {
    for (const l of [...this.#listeners]) {
      try {
        l(event);
      } catch (err) {
        onError(err);
      }
    }
  }
}
