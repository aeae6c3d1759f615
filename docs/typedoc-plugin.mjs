// A TypeDoc plugin for `npm run docs` (loaded from typedoc.json). Not part of the package.
//
// `validation.notDocumented` asks for a comment on every property, including the members of
// anonymous object types: the literal members zod synthesizes for its schemas' types
// (`ZodEnum<{ PENDING: 'PENDING', ... }>`), the objects of a discriminated union, inline return
// types. Those have no declaration of their own to comment (or are described by the union or
// function they belong to), so this plugin exempts them: it lists each undocumented property
// whose parent is a type literal in `intentionallyNotDocumented` before validation runs.
// Exported symbols, and the properties of interfaces, classes and `@interface` type aliases,
// still fail the build when they lack a comment.
import { Converter, ReflectionKind } from 'typedoc'

/** @param {import('typedoc').Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_END, (context) => {
    const exempt = []
    for (const reflection of context.project.getReflectionsByKind(ReflectionKind.Property)) {
      if (reflection.hasComment() || !reflection.parent?.kindOf(ReflectionKind.TypeLiteral)) continue
      // TypeDoc never validates members under a parameter; listing them would be reported as unused.
      let ancestor = reflection.parent
      while (ancestor && !ancestor.kindOf(ReflectionKind.Parameter)) ancestor = ancestor.parent
      if (ancestor) continue
      exempt.push(reflection.getFriendlyFullName())
    }
    const configured = app.options.getValue('intentionallyNotDocumented')
    app.options.setValue('intentionallyNotDocumented', [...new Set([...configured, ...exempt])])
  })
}
