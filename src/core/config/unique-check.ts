import type { z } from "zod";

/**
 * Reports every item of a config list whose `field` repeats an earlier one, at the repeated
 * item's path (e.g. `models.2.model_id: duplicate model_id "qwen"`).
 */
export function checkUnique<T>(
  items: readonly T[],
  listKey: string,
  field: keyof T & string,
  ctx: z.RefinementCtx,
): void {
  const seen = new Set<unknown>();
  items.forEach((item, index) => {
    const value = item[field];
    if (seen.has(value)) {
      ctx.addIssue({
        code: "custom",
        path: [listKey, index, field],
        message: `duplicate ${field} "${String(value)}"`,
      });
    }
    seen.add(value);
  });
}
